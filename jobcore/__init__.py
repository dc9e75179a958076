"""Echo4D job core: what the API and the worker share (settings, job table, storage, queue, metrics, webhooks,
the job resource, erasure, the reconciler). Imports neither the HTTP layer (``service``) nor ``worker``, and
never FastAPI or torch.
"""
