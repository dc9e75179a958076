"""HTTP routers under /v1 (studies, DICOMweb, jobs, artifacts) and the unversioned health/metrics routes."""
