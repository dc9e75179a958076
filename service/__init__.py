"""Echo4D service: the HTTP gateway (FastAPI app, routes, auth, rate limits, request checks, problem+json).

Builds on the job core (``jobcore``); never imports the worker. Must import without torch: the API image carries
none.
"""
