"""Echo4D models: geometry, synthetic cohort, shape prior, reconstruction, ingest and export.

Pure functions and modules: no HTTP, database, object store, printing or global state.
Importing this package must not import torch (the API image carries none).
"""

__version__ = "0.1.0"
