"""The lake bucket as the pipeline's shared truth: every stage's output and record, by key.

Every host reads and writes the same bucket, so whether a month's stage is done is decided
here, never from a local disk. Objects are verified by the md5 GCS computes, written
create-only or replaced by generation, and small JSON records are updated with a
generation precondition, so two writers on two hosts can never silently overwrite each other.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import storage
from google.resumable_media.common import DataCorruption

from tlc import gcp, layout
from tlc.atomic import atomic_path
from tlc.config import GcsConfig
from tlc.errors import SinkError
from tlc.gcs import objects
from tlc.month import Month

_RECORD_READS = 3  # reads of a small record whose bytes fail their checksum, before it is an error


@dataclass(frozen=True)
class Lake:
    """The lake bucket (a handle: no request is made until used) and the prefix of the lake in it."""

    bucket: storage.Bucket
    prefix: str
    location: str
    retry_seconds: float

    @classmethod
    def from_config(cls) -> Lake:
        cfg = GcsConfig()
        bucket = gcp.storage_client(cfg.project_id()).bucket(cfg.bucket_name())
        return cls(bucket, cfg.lake_prefix(), cfg.location, cfg.retry_seconds)

    @property
    def where(self) -> tuple[str, str]:
        """What identifies the lake (each task makes its own handle): bulk checks group by it."""
        return self.bucket.name, self.prefix

    @property
    def retry(self) -> Any:
        return gcp.storage_retry(self.retry_seconds)

    def name(self, key: str) -> str:
        return f"{self.prefix}/{key}"

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket.name}/{self.name(key)}"

    def object_name(self, month: Month) -> str:
        """The published month's object name."""
        return self.name(layout.lake_key(month))

    def ensure_bucket(self) -> storage.Bucket:
        return objects.ensure_bucket(self.bucket.client, self.bucket.name, self.location, self.retry_seconds)

    @contextlib.contextmanager
    def _errors(self, what: str, key: str) -> Iterator[None]:
        with gcp.sink_errors(f"GCS {what} of {self.uri(key)}"):
            yield

    def get(self, key: str) -> storage.Blob | None:
        """The object's current metadata (md5, size, generation, metadata), or None."""
        with self._errors("read", key):
            try:
                return self.bucket.get_blob(self.name(key), retry=self.retry)
            except gexc.NotFound:  # no bucket yet
                return None

    def listing(self, key_prefix: str) -> dict[str, storage.Blob]:
        """Every object under a key prefix, by key, from one listing; empty when there is no bucket yet."""
        with self._errors("listing", key_prefix):
            try:
                blobs = list(self.bucket.list_blobs(prefix=self.name(key_prefix), retry=self.retry))
            except gexc.NotFound:
                return {}
        return {b.name.removeprefix(f"{self.prefix}/"): b for b in blobs}

    def put(self, key: str, path: Path, md5_hex: str, metadata: dict[str, str], content_type: str) -> storage.Blob:
        """Upload a file create-only (an identical object already there is accepted), verified by md5."""
        self.ensure_bucket()
        return objects.upload(self.bucket, self.name(key), path, md5_hex, metadata, self.retry_seconds, content_type)

    def fetch(self, blob: storage.Blob, dest: Path) -> Path:
        """Download exactly this generation of an object to ``dest`` atomically, checked by md5."""
        pinned = self.bucket.blob(blob.name, generation=blob.generation)
        key = blob.name.removeprefix(f"{self.prefix}/")
        with self._errors("download", key), atomic_path(dest) as tmp:
            pinned.download_to_filename(str(tmp), checksum="md5", retry=self.retry)
        return dest

    def reader(self, blob: storage.Blob) -> _Reader:
        """A seekable reader of exactly this generation: Parquet is read by ranges, never whole."""
        pinned = self.bucket.blob(blob.name, generation=blob.generation)
        return _Reader(
            pinned.open("rb", chunk_size=8 << 20, retry=self.retry), f"GCS read of gs://{blob.bucket.name}/{blob.name}"
        )

    def publish(
        self, source: storage.Blob, key: str, md5_hex: str, metadata: dict[str, str], if_generation_match: int
    ) -> storage.Blob:
        """Copy an object to ``key`` inside GCS (no bytes through this host) and verify what landed.

        Only over the generation the caller saw (0: only where nothing is): two writers cannot both
        replace one month's object, the later with an older Parquet.
        """
        target = self.bucket.blob(self.name(key))
        target.metadata = metadata
        target.content_type = source.content_type
        with self._errors("publish", key):
            token = None
            while True:  # a rewrite of a large object may take several calls
                token, _, _ = target.rewrite(
                    source,
                    token=token,
                    if_generation_match=if_generation_match,
                    if_source_generation_match=source.generation,
                    retry=self.retry,
                )
                if token is None:
                    break
            landed = self.bucket.get_blob(self.name(key), retry=self.retry)
        if landed is None or landed.md5_hash != objects.md5_b64(md5_hex):
            raise SinkError(f"GCS object {self.uri(key)} does not match its Parquet after publishing")
        return landed

    def delete(self, blob: storage.Blob) -> None:
        """Delete exactly this generation: a newer object written meanwhile by another host survives."""
        where = f"GCS delete of gs://{self.bucket.name}/{blob.name}"
        with gcp.sink_errors(where), contextlib.suppress(gexc.NotFound, gexc.PreconditionFailed):
            self.bucket.blob(blob.name).delete(if_generation_match=blob.generation, retry=self.retry)

    def read_json(self, key: str) -> tuple[dict[str, Any] | None, int]:
        """A small JSON record and the generation those very bytes are (0 when absent), in one
        request: the generation comes with the download. An unreadable record reads as absent."""
        for attempt in range(1, _RECORD_READS + 1):
            blob = self.bucket.blob(self.name(key))
            with self._errors("read", key):
                try:
                    data = blob.download_as_bytes(retry=self.retry)
                    if not blob.generation:  # a server that does not say: ask, then read exactly that one
                        blob = self.bucket.get_blob(self.name(key), retry=self.retry)
                        data = blob.download_as_bytes(if_generation_match=blob.generation, retry=self.retry)
                except (gexc.NotFound, gexc.PreconditionFailed, AttributeError):
                    return None, 0  # gone, or replaced between two calls: read as absent, the caller retries
                except DataCorruption:
                    # Bytes that fail their checksum: fake-gcs-server serves a record being replaced
                    # that way, a network can too. A record is small: read it again.
                    if attempt < _RECORD_READS:
                        continue
                    raise
            break
        generation = int(blob.generation)
        try:
            doc = json.loads(data)
        except ValueError:
            return None, generation
        return (doc if isinstance(doc, dict) else None), generation

    def write_json(self, key: str, doc: dict[str, Any], if_generation_match: int | None = None) -> bool:
        """Write a record; with ``if_generation_match`` only over that generation (0: only if absent).

        False when another writer got there first: the caller reads again and retries.
        """
        self.ensure_bucket()
        body = json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"
        with self._errors("write", key):
            try:
                self.bucket.blob(self.name(key)).upload_from_string(
                    body, content_type="application/json", if_generation_match=if_generation_match, retry=self.retry
                )
            except gexc.PreconditionFailed:
                return False
        return True


class _Reader(io.RawIOBase):
    """A ranged GCS reader whose failures are one ``SinkError`` line naming the object.

    A read fails deep inside pyarrow or a COPY loop, far from any code that knows which object it
    was; without this a lost connection or an object deleted mid-read surfaced as a client
    traceback instead of the sink's one-line error.
    """

    def __init__(self, inner: Any, what: str) -> None:
        super().__init__()
        self._inner = inner
        self._what = what

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        with gcp.sink_errors(self._what):
            return self._inner.read(size)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")  # a buffer of wider items still counts bytes
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with gcp.sink_errors(self._what):
            return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a read-only stream cannot lose data
            self._inner.close()
        super().close()
