"""What every sink's Target has in common: the month, the Parquet it must hold, and bulk checks.

A sink (the GCS object, the BigQuery month, the Postgres month) is done only when it holds
exactly the Parquet the month's quality report describes. Each sink's Target says how it
observes that, once, in ``observe_all`` (one listing or query per color for many months);
``exists``, ``bulk_exists`` and the reconciliation report are all answered from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import luigi

from tlc.errors import SinkError
from tlc.lake.target import LakeParquet
from tlc.month import Month
from tlc.quality import QualityReport

H = TypeVar("H")  # the sink's handle: a Lake, a Dataset, a Database


@dataclass(frozen=True)
class SinkState:
    """``rows`` the sink holds for the month (None: nothing there); ``holds``: they are exactly the
    rows of the Parquet the quality report describes; ``done``: that, and the report was made
    under the configuration in force; ``note`` says why not."""

    rows: int | None
    done: bool
    note: str = ""
    holds: bool = False  # apart from ``done``: the report keeps a stale month apart from a wrong one


class SinkTarget(luigi.Target, Generic[H]):
    """One month in one sink, checked against the month's canonical Parquet (its quality report).

    A subclass says how to look the month up in its sink, for one month (``_lookup_one``) and
    for many (``_lookup``: one listing or query per color), and what it found means
    (``_state``). Done is then, everywhere: the sink holds exactly the Parquet of the report,
    and that report was made under the configuration in force, so a changed cleaning rule
    or a rebuilt Parquet reloads every sink in the same run.
    """

    stage: ClassVar[str] = ""  # the ledger stage it records (tlc.ledger.STAGES)

    def __init__(self, handle: H, month: Month, parquet: LakeParquet) -> None:
        self.handle, self.month, self.parquet = handle, month, parquet

    def _lookup_one(self) -> Any:
        return self._lookup([self])[0]

    @classmethod
    def _lookup(cls, targets: list[Any]) -> list[Any]:
        raise NotImplementedError

    def _state(self, found: Any, report: QualityReport | None) -> SinkState:
        raise NotImplementedError

    def _judged(self, rows: int | None, matches: bool, report: QualityReport | None, note: str = "") -> SinkState:
        return SinkState(rows, matches and self.parquet.current(report), note, holds=matches)

    def observe(self) -> SinkState:
        return self._state(self._lookup_one(), self.parquet.report())

    @classmethod
    def observe_all(cls, targets: list[Any]) -> list[SinkState]:
        """Many months with one listing or query per color; the reports with one listing per color."""
        if not targets:
            return []
        reports = LakeParquet.reports([t.parquet for t in targets])
        return [
            t._state(found, report) for t, found, report in zip(targets, cls._lookup(targets), reports, strict=True)
        ]

    def exists(self) -> bool:
        return self.observe().done

    @classmethod
    def bulk_exists(cls, targets: list[Any]) -> list[bool]:
        """luigi's bulk idea for Targets: many months answered with one listing or query per color."""
        return [s.done for s in cls.observe_all(targets)]

    def report(self) -> QualityReport:
        """The Parquet's quality report, which a load needs; its absence is a one-line error."""
        report = self.parquet.report()
        if report is None:
            raise SinkError(f"{self.month.label}: the Parquet has no quality report; rerun ParquetFile")
        return report

    def facts(self) -> dict[str, Any]:
        """The ledger's entry for this sink; only asked once the month is done there."""
        raise NotImplementedError
