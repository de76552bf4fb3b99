"""The GCS data lake: one object per month, verified by checksum, never half-replaced.

An object is trusted only when its md5 (computed by GCS) equals the md5 recorded when the
Parquet was written; a truncated, replaced or foreign object fails that test and is
replaced. Uploads are create-only (``if_generation_match=0``), so two writers cannot both
win; the loser accepts the winner's object when its md5 is ours. A stale object is deleted
by generation first.
"""

from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path

from google.api_core import exceptions as gexc
from google.cloud import storage

from tlc import phases
from tlc.errors import SinkError
from tlc.gcp import sink_errors, storage_retry


def md5_b64(md5_hex: str) -> str:
    """GCS reports md5 as base64 of the raw digest; reports keep hex."""
    return base64.b64encode(bytes.fromhex(md5_hex)).decode()


PARQUET = "application/vnd.apache.parquet"
_ENSURED: set[tuple[int, str]] = set()  # (pid, bucket) already seen to exist by this process


def ensure_bucket(client: storage.Client, name: str, location: str, retry_seconds: float) -> storage.Bucket:
    """The bucket, created if missing; asked once per process, not before every write."""
    if (os.getpid(), name) in _ENSURED:
        return client.bucket(name)
    retry = storage_retry(retry_seconds)
    with sink_errors(f"GCS bucket gs://{name}"):
        try:
            bucket = client.get_bucket(name, retry=retry)
        except gexc.NotFound:
            try:
                bucket = client.create_bucket(name, location=location, retry=retry)
            except gexc.Conflict:  # created by a concurrent worker meanwhile
                bucket = client.get_bucket(name, retry=retry)
    _ENSURED.add((os.getpid(), name))
    return bucket


# A resumable upload holds one chunk in memory; the client's default is 100 MB, which made a large
# month's upload the peak of its whole conversion. 16 MB (a multiple of 256 KiB, as GCS requires)
# keeps memory flat and each request long enough for a fast link.
UPLOAD_CHUNK = 16 << 20


def upload(
    bucket: storage.Bucket,
    name: str,
    path: Path,
    md5_hex: str,
    metadata: dict[str, str],
    retry_seconds: float,
    content_type: str = PARQUET,
) -> storage.Blob:
    """Put ``path`` at ``name`` unless an identical object is there; verify what landed."""
    retry = storage_retry(retry_seconds)
    where = f"gs://{bucket.name}/{name}"
    with sink_errors(f"GCS upload to {where}"):
        existing = bucket.get_blob(name, retry=retry)
        if existing is not None:
            if existing.md5_hash == md5_b64(md5_hex):
                return existing
            # Gone or replaced meanwhile (another writer doing the same): the create-only upload decides.
            with contextlib.suppress(gexc.NotFound, gexc.PreconditionFailed):
                existing.delete(if_generation_match=existing.generation, retry=retry)
        blob = bucket.blob(name, chunk_size=UPLOAD_CHUNK)
        blob.metadata = metadata
        blob.content_type = content_type
        # PreconditionFailed: another writer created it first; fine if its bytes are ours (checked below).
        phases.reached("gcs.uploading", name=name)
        with contextlib.suppress(gexc.PreconditionFailed):
            # checksum="md5": the client compares GCS's digest of the received bytes with its own.
            blob.upload_from_filename(str(path), if_generation_match=0, checksum="md5", retry=retry)
        landed = bucket.get_blob(name, retry=retry)
    if landed is None or landed.md5_hash != md5_b64(md5_hex):
        raise SinkError(f"GCS object {where} does not match the local file after upload")
    return landed
