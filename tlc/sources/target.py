"""When is a month's source file downloaded? ``RawFile`` answers.

The download record (URL, size, sha256, ETag, Last-Modified) is written after the file is
in place, so a file without a record, or of another size than recorded, is not done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import luigi

from tlc import layout
from tlc.atomic import read_json
from tlc.month import Month


class RawFile(luigi.Target):
    def __init__(self, root: Path, month: Month) -> None:
        self.month = month
        self.path = layout.raw_path(root, month)
        self.record_path = layout.raw_meta_path(self.path)

    def record(self) -> dict[str, Any] | None:
        return read_json(self.record_path)

    def exists(self) -> bool:
        record = self.record()
        return bool(record) and self.path.exists() and self.path.stat().st_size == record.get("size")

    def facts(self) -> dict[str, Any]:
        """The ledger's ``source`` entry: the download record as written."""
        return self.record() or {}
