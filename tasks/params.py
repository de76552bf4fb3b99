"""Luigi parameters that refuse bad values at parse time, and the base of every month's task.

The parameters make the task's ``Month`` once; every target and function below the task
takes that value, never the three loose parameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import luigi

from tlc import ledger, phases
from tlc.config import SourceConfig
from tlc.errors import InvalidInput, PipelineError
from tlc.month import COLORS, Month, validate_color, validate_month_number, validate_year


class ColorParameter(luigi.Parameter):
    def normalize(self, x: Any) -> str:
        return validate_color(str(x))


def _whole_number(what: str, text: str, allowed: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{what} {text!r} is not valid: use {allowed}") from None


class WholeNumberParameter(luigi.IntParameter):
    """An int whose unreadable text is an InvalidInput naming it, not a ValueError traceback."""

    what, allowed = "value", "a whole number"

    def parse(self, x: str) -> int:
        return _whole_number(self.what, x, self.allowed)


class YearParameter(WholeNumberParameter):
    what, allowed = "year", "a year such as 2021"

    def normalize(self, x: Any) -> int:
        return validate_year(int(x))


class MonthParameter(WholeNumberParameter):
    what, allowed = "month", "1-12"

    def normalize(self, x: Any) -> int:
        return validate_month_number(int(x))


class OptionalYearParameter(luigi.parameter.OptionalParameterMixin, YearParameter):
    expected_type = int


class OptionalWindowParameter(luigi.parameter.OptionalParameterMixin, WholeNumberParameter):
    expected_type = int
    what, allowed = "window", "1-240 months"


class MonthTask(luigi.Task):
    """A unit of work keyed by the source file's month; ``self.unit`` is that month, validated whole,
    with the source kind its file comes from."""

    color = ColorParameter(
        description=f"trip record color (service): {', '.join(COLORS)}; the month's file comes from "
        "--tlc.source-kind ([tlc.source] kind): auto (default), csv or parquet"
    )
    year = YearParameter(description="year of the source file, 2009 onwards (green 2013-08, fhv 2015, fhvhv 2019-02)")
    month = MonthParameter(description="month of the source file, 1-12")

    ledger_stage: ClassVar[str] = ""  # the manifest entry this task writes, if any (tlc.ledger.STAGES)
    upstream: ClassVar[type[MonthTask] | None] = None  # the stage whose output this one is made from
    load_resource: ClassVar[str] = ""  # a sink's luigi resource: loads at once, capped across hosts

    @property
    def resources(self) -> dict[str, int]:  # type: ignore[override]
        """One unit of the sink's resource per load; luigid's ``[resources]`` says how many exist."""
        return {self.load_resource: 1} if self.load_resource else {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the source kind is resolved here, once, from [tlc.source] kind (see tlc.month.resolve_source)
        self.unit = Month(
            self.color, self.year, self.month, SourceConfig().source_of(self.color, self.year, self.month)
        )

    def requires(self) -> Any:
        return self.upstream.of(self.unit) if self.upstream else []

    def run(self) -> None:
        """Make the output, unless some worker made it since this task was scheduled.

        With workers on several hosts, luigid can hand out a task another host finished a moment
        ago (a late "pending" from a third host resets it), so the stage asks its Target first:
        nothing is fetched, converted or loaded twice.
        """
        try:
            done = self.complete()
        except PipelineError:  # the check is an optimisation: make() meets the same fault and says so
            done = False
        if done:
            self.set_status_message(f"{self.unit.label}: already done by another worker")
            return
        self.make()

    def make(self) -> None:
        raise NotImplementedError

    @classmethod
    def of(cls, unit: Month) -> Any:
        """The task of a month: ``ParquetFile.of(month)``."""
        return cls(color=unit.color, year=unit.year, month=unit.month)

    def record_stage(self) -> None:
        """Write this stage's manifest entry from its output; IngestMonth calls it again if a kill skipped it."""
        from tlc.gcs.lake import Lake  # the Google client loads only when a stage runs

        facts = self.output().facts()
        phases.reached(f"{self.ledger_stage}.committed", month=self.unit)
        ledger.record(Lake.from_config(), self.unit, self.ledger_stage, facts)

    def reporter(self, every_seconds: float = 1.0) -> Callable[[float, str], None]:
        """Progress for the scheduler UI, throttled: each update is a scheduler RPC."""
        last = [0.0]

        def report(fraction: float, message: str) -> None:
            now = time.monotonic()
            if now - last[0] < every_seconds and fraction < 1.0:
                return
            last[0] = now
            self.set_progress_percentage(round(min(max(fraction, 0.0), 1.0) * 100, 1))
            self.set_status_message(f"{self.unit.label}: {message}")

        return report
