"""Named points inside each stage, announced as the stage passes them: the seams for fault tests.

A stage that is killed, stalled or failed *inside* its work must still leave nothing partial;
proving that needs a way to stop a real run at a precise point. Each stage announces its
phases here; nothing is registered in production, so a phase costs one dict lookup. Tests
register a callback by phase name (``tests/faults/hooks.py``), never by patching private
functions or matching SQL text, so rewording a statement cannot break them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Every phase a stage announces, with the context it passes.
PHASES = {
    "parquet.row_group_written": "a row group of the month is in the temporary Parquet (rows, bytes so far)",
    "gcs.uploading": "an upload to the lake is about to start: the raw zone, a staged Parquet (name)",
    "gcs.publishing": "the staged Parquet is about to be published under its lake key (name)",
    "bigquery.loading": "a month's load is about to begin: nothing is staged yet (month, uri)",
    "bigquery.swapping": "the staging table is loaded and checked; this attempt of the swap is about to run (staging)",
    "postgres.copying": "rows are streaming into the staging table (rows copied so far, expected)",
    "source.committed": "the download is in place; its ledger entry is not written yet",
    "parquet.committed": "the Parquet and its report are in place; the ledger entry is not written yet",
    "gcs.committed": "the object is verified in the bucket; the ledger entry is not written yet",
    "bigquery.committed": "the month's transaction committed; the ledger entry is not written yet",
    "postgres.committed": "the month's transaction committed; the ledger entry is not written yet",
}

Hook = Callable[..., None]
_hooks: dict[str, list[Hook]] = {}


def on(phase: str, hook: Hook) -> None:
    """Call ``hook(**context)`` each time ``phase`` is reached (in the thread that reaches it)."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}: use one of {', '.join(PHASES)}")
    _hooks.setdefault(phase, []).append(hook)


def clear() -> None:
    _hooks.clear()


def reached(phase: str, **context: Any) -> None:
    for hook in _hooks.get(phase, ()):
        hook(**context)
