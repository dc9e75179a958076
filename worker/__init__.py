"""Echo4D worker: the Celery app and thin tasks that call models/."""
