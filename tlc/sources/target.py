"""When is a month's source file downloaded? ``RawFile`` answers: when the lake's raw zone holds it.

The file as published is kept in the bucket (``{prefix}/raw/...``) with its download record
(URL, size, sha256, md5, ETag, Last-Modified) as object metadata, so every host sees the
download, and a host that converts a month another host downloaded reads it from the bucket,
never from the source again. The local copy is a cache, trusted only while its own record
names the same sha256 as the bucket's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import luigi
from google.cloud import storage

from tlc import layout
from tlc.atomic import read_json, write_json
from tlc.errors import SinkError
from tlc.gcs.lake import Lake
from tlc.lake.writer import file_digests
from tlc.month import Month

_RECORD = "tlc-download-record"  # the object metadata key holding the download record as JSON


def record_of(blob: storage.Blob | None) -> dict[str, Any] | None:
    """The download record an object carries, when the object is whole (its size and md5 as recorded)."""
    if blob is None:
        return None
    try:
        record = json.loads((blob.metadata or {}).get(_RECORD, ""))
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("size") != blob.size:
        return None
    return record


class RawFile(luigi.Target):
    def __init__(self, lake: Lake, root: Path, month: Month) -> None:
        self.lake, self.month = lake, month
        self.key = layout.raw_key(month)
        self.path = layout.raw_path(root, month)
        self.record_path = layout.raw_meta_path(self.path)

    def blob(self) -> storage.Blob | None:
        return self.lake.get(self.key)

    def record(self) -> dict[str, Any] | None:
        return record_of(self.blob())

    def exists(self) -> bool:
        return self.record() is not None

    def facts(self) -> dict[str, Any]:
        """The ledger's ``source`` entry: the download record as written."""
        return self.record() or {}

    def keep(self, record: dict[str, Any]) -> None:
        """Put the downloaded file (already at ``self.path``, verified) into the raw zone with its record."""
        record = {**record, "md5": record.get("md5") or file_digests(self.path)["md5"]}  # older records lack it
        write_json(self.record_path, record)
        metadata = {_RECORD: json.dumps(record, sort_keys=True)}
        self.lake.put(self.key, self.path, record["md5"], metadata, "application/gzip")

    def local(self) -> Path:
        """The file on this host: the cache when it is this very download, else fetched from the bucket."""
        blob = self.blob()
        record = record_of(blob)
        if blob is None or record is None:
            raise SinkError(f"{self.lake.uri(self.key)} is not in the lake: rerun the download")
        cached = read_json(self.record_path) or {}
        if not (
            self.path.exists()
            and cached.get("sha256") == record["sha256"]
            and self.path.stat().st_size == record["size"]
        ):
            self.lake.fetch(blob, self.path)
            write_json(self.record_path, record)
        return self.path

    def drop(self) -> None:
        """Remove the download from the raw zone and the cache (a refused or republished file)."""
        blob = self.blob()
        if blob is not None:
            self.lake.delete(blob)
        self.record_path.unlink(missing_ok=True)
