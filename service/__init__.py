"""Echo4D service: FastAPI gateway, settings, job table, storage, auth, metrics and the CLI.

Must import without torch: the API image carries none.
"""
