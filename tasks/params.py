"""Luigi parameters that refuse bad values at parse time, before the scheduler sees a task."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import luigi

from tasks import ledger
from tasks.errors import InvalidInput, local_writes
from tasks.months import COLORS, validate_color, validate_month, validate_month_number, validate_year
from tasks.settings import paths


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
    """A unit of work keyed by the source file's month; validates the month as a whole."""

    color = ColorParameter(description=f"trip record color: {', '.join(COLORS)}")
    year = YearParameter(description="year of the source file, 2009 onwards")
    month = MonthParameter(description="month of the source file, 1-12")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        validate_month(self.year, self.month)

    ledger_stage: str = ""  # the manifest entry this task writes, if any (tasks.ledger.STAGES)

    def ledger_facts(self) -> dict[str, Any]:
        """What this stage holds now, read back from its output; only called once it is complete."""
        raise NotImplementedError

    def record_stage(self) -> None:
        """Write this stage's manifest entry; IngestMonth calls it again if a kill skipped it."""
        with local_writes(f"writing the manifest of {self.label} under {paths().root()}"):
            ledger.record(paths().root(), self.color, self.year, self.month, self.ledger_stage, self.ledger_facts())

    @property
    def label(self) -> str:
        return f"{self.color} {self.year}-{self.month:02d}"

    def reporter(self, every_seconds: float = 1.0) -> Callable[[float, str], None]:
        """Progress for the scheduler UI, throttled: each update is a scheduler RPC."""
        last = [0.0]

        def report(fraction: float, message: str) -> None:
            now = time.monotonic()
            if now - last[0] < every_seconds and fraction < 1.0:
                return
            last[0] = now
            self.set_progress_percentage(round(min(max(fraction, 0.0), 1.0) * 100, 1))
            self.set_status_message(f"{self.label}: {message}")

        return report
