"""Results in an S3-compatible bucket, handed out as presigned GET URLs.

Needs the optional ``s3`` extra (boto3); import this module only for that backend.

For deployments with several machines or little local disk. Links are
presigned by the bucket's own credentials, so the API serves no files. SigV4
presigned URLs live at most 7 days; result links live far less (24 h).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import boto3
from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from upres.clock import Clock, utc_now
from upres.domain.storage_keys import download_name
from upres.errors import NotFound, StorageUnavailable
from upres.inputs.ranged import DEFAULT_BLOCK, DEFAULT_CACHE_BLOCKS, BlockReader
from upres.storage.base import check_key
from upres.storage.readers import UNBOUNDED

MAX_PRESIGN_S = 7 * 24 * 3600


class S3Client(Protocol):
    """The few calls of a boto3 S3 client that upres makes."""

    def upload_file(self, Filename: str, Bucket: str, Key: str) -> None: ...  # noqa: N803
    def download_file(self, Bucket: str, Key: str, Filename: str) -> None: ...  # noqa: N803
    def delete_object(self, *, Bucket: str, Key: str) -> Any: ...  # noqa: N803
    def head_object(self, *, Bucket: str, Key: str) -> Any: ...  # noqa: N803
    def get_object(self, *, Bucket: str, Key: str, Range: str) -> Any: ...  # noqa: N803
    def generate_presigned_url(
        self,
        ClientMethod: str,  # noqa: N803
        Params: dict[str, str],  # noqa: N803
        ExpiresIn: int,  # noqa: N803
    ) -> str: ...


def s3_client(*, endpoint_url: str | None, region: str | None) -> S3Client:
    """A boto3 S3 client signing with SigV4; credentials come from boto3's usual chain."""
    config = Config(signature_version="s3v4")
    client: S3Client = boto3.client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config
    )
    return client


class S3Storage:
    """Result files as objects ``<prefix><key>`` in ``bucket``.

    Every method raises StorageUnavailable when the bucket cannot be reached
    or refuses, and InvalidRequest for an unsafe key.
    """

    def __init__(
        self, client: S3Client, *, bucket: str, prefix: str = "", clock: Clock = utc_now
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._clock = clock

    def put(self, src: Path, key: str) -> None:
        """Upload ``src``; S3 makes the object visible only once it is whole."""
        name = self._name(key)
        try:
            self._client.upload_file(str(src), self._bucket, name)
        except (Boto3Error, BotoCoreError, ClientError, OSError) as exc:
            raise StorageUnavailable(f"Cannot store result {key!r} in S3: {exc}") from exc

    def copy_to(self, key: str, dest: Path) -> None:
        try:
            self._client.download_file(self._bucket, self._name(key), str(dest))
        except ClientError as exc:
            if _missing(exc):
                raise NotFound(f"No stored file {key!r}") from exc
            raise StorageUnavailable(f"Cannot read {key!r} from S3: {exc}") from exc
        except (Boto3Error, BotoCoreError, OSError) as exc:
            raise StorageUnavailable(f"Cannot read {key!r} from S3: {exc}") from exc

    def url(self, key: str, *, expires_at: datetime) -> str:
        """A presigned GET URL valid until ``expires_at`` (1 s to 7 days from now)."""
        seconds = int((expires_at - self._clock()).total_seconds())
        params = {
            "Bucket": self._bucket,
            "Key": self._name(key),
            "ResponseContentDisposition": f'attachment; filename="{download_name(key)}"',
        }
        try:
            return self._client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=min(max(seconds, 1), MAX_PRESIGN_S)
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"Cannot sign a link for {key!r}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self._bucket, Key=self._name(key))
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"Cannot delete result {key!r} from S3: {exc}") from exc

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self._bucket, Key=self._name(key))
        except ClientError as exc:
            if _missing(exc):
                return False
            raise StorageUnavailable(f"Cannot look up result {key!r} in S3: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"Cannot look up result {key!r} in S3: {exc}") from exc
        return True

    def reader(self, key: str) -> ObjectReader:
        """The object read with ranged GETs, one per run of missing blocks."""
        name = self._name(key)
        try:
            head = self._client.head_object(Bucket=self._bucket, Key=name)
        except ClientError as exc:
            if _missing(exc):
                raise NotFound(f"No stored file {key!r}") from exc
            raise StorageUnavailable(f"Cannot read {key!r} from S3: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"Cannot read {key!r} from S3: {exc}") from exc
        size = int(head["ContentLength"])
        return ObjectReader(self._client, bucket=self._bucket, name=name, size=size)

    def _name(self, key: str) -> str:
        return self._prefix + check_key(key)


class ObjectReader(BlockReader):
    """An S3 object of ``size`` bytes, read with ranged GETs (``BlockReader``)."""

    def __init__(
        self,
        client: S3Client,
        *,
        bucket: str,
        name: str,
        size: int,
        block_size: int = DEFAULT_BLOCK,
    ) -> None:
        super().__init__(
            size=size,
            max_bytes=UNBOUNDED,
            block_size=block_size,
            cache_blocks=DEFAULT_CACHE_BLOCKS,
        )
        self._client = client
        self._bucket = bucket
        self._name = name

    def _fetch(self, begin: int, end: int) -> bytes:
        """Raises StorageUnavailable when the GET fails or answers other bytes."""
        try:
            answer = self._client.get_object(
                Bucket=self._bucket, Key=self._name, Range=f"bytes={begin}-{end - 1}"
            )
            data: bytes = answer["Body"].read()
        except (BotoCoreError, ClientError, OSError) as exc:
            raise StorageUnavailable(f"Cannot read {self._name!r} from S3: {exc}") from exc
        if len(data) != end - begin:
            raise StorageUnavailable(f"S3 answered a range of {self._name!r} with other bytes")
        return data


def _missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")
