"""Result files: where they are kept, signed expiring links to them, and their cleanup."""

from __future__ import annotations

from upres.clock import Clock, utc_now
from upres.config import Settings
from upres.errors import ServiceUnavailable
from upres.storage.base import ResultStorage, check_key
from upres.storage.janitor import Janitor
from upres.storage.local import LocalStorage, load_or_create_secret
from upres.storage.memory import MemoryStorage

__all__ = [
    "Janitor",
    "LocalStorage",
    "MemoryStorage",
    "ResultStorage",
    "build_storage",
    "check_key",
    "load_or_create_secret",
]


def build_storage(settings: Settings, *, clock: Clock = utc_now) -> ResultStorage:
    """The storage backend the settings choose (built in entry points).

    Raises ServiceUnavailable when s3 is chosen without a bucket, or the
    local signing secret cannot be loaded.
    """
    if settings.storage_backend == "s3":
        if not settings.s3_bucket:
            raise ServiceUnavailable("UPRES_S3_BUCKET must be set when UPRES_STORAGE_BACKEND=s3")
        # boto3 is an optional extra: imported only when the s3 backend is chosen.
        from upres.storage.s3 import S3Storage, s3_client  # noqa: PLC0415

        client = s3_client(endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
        return S3Storage(client, bucket=settings.s3_bucket, prefix=settings.s3_prefix, clock=clock)
    return LocalStorage(
        settings.data_dir / "results",
        base_url=settings.resolved_public_base_url,
        secret=load_or_create_secret(settings.data_dir),
        clock=clock,
    )
