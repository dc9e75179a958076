"""Object storage behind one interface: :class:`LocalStore` (folder) and :class:`MinioStore` (MinIO/S3)."""

from __future__ import annotations

from jobcore.settings import Settings
from jobcore.storage.base import ListedObject, ObjectInfo, ObjectStore, check_key, input_key, output_key
from jobcore.storage.local import LocalStore

__all__ = ["ListedObject", "LocalStore", "ObjectInfo", "ObjectStore", "build_store", "check_key", "input_key",
           "output_key"]


def build_store(settings: Settings) -> ObjectStore:
    """The store ``settings`` describe (not yet checked; call ``ensure_ready()`` at start-up)."""
    if settings.store_backend == "minio":
        from jobcore.storage.s3 import MinioStore

        return MinioStore(
            settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key.get_secret_value(),
            settings.s3_bucket, secure=settings.s3_secure, region=settings.s3_region,
            public_endpoint=settings.s3_public_endpoint,
        )
    return LocalStore(settings.resolved_store_dir)
