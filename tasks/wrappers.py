"""Wrapper tasks over many months: the backfill and the scheduled catch-up.

luigi's ``RangeMonthly`` clips to 13 months back and caps its task count by default, so a
backfill of years would silently do part of the work; these wrappers enumerate exactly the
months asked for, every one validated before anything is scheduled.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import luigi

from tasks import layout, ledger
from tasks.bigquery import BigQueryTable
from tasks.download import DownloadCSV
from tasks.errors import InvalidInput
from tasks.fetch import is_published, source_url
from tasks.gcs import GCSObject
from tasks.months import (
    COLORS,
    FIRST_YEAR,
    last_complete_month,
    month_span,
    parse_year_month,
    validate_color,
    validate_month,
)
from tasks.params import MonthTask, OptionalWindowParameter, OptionalYearParameter
from tasks.parquet import ParquetFile
from tasks.postgres import PostgresTable
from tasks.settings import paths, schedule, source

logger = logging.getLogger("luigi-interface")


class IngestMonth(MonthTask):
    """Everything one month needs, from the source to every sink, and its manifest whole.

    A worker killed after a sink committed but before it wrote its manifest entry leaves the
    sink complete and the entry missing; this task's run() writes such entries from the
    sinks' state, so every ingested month's manifest names every stage.
    """

    def requires(self) -> list[luigi.Task]:
        return [
            ParquetFile(color=self.color, year=self.year, month=self.month),
            GCSObject(color=self.color, year=self.year, month=self.month),
            BigQueryTable(color=self.color, year=self.year, month=self.month),
            PostgresTable(color=self.color, year=self.year, month=self.month),
        ]

    def _stage_tasks(self) -> list[MonthTask]:
        return [DownloadCSV(color=self.color, year=self.year, month=self.month), *self.requires()]

    def unrecorded(self) -> list[str]:
        """Manifest entries to write; the source's only while its download record is on disk."""
        raw = layout.raw_path(paths().root(), self.color, self.year, self.month)
        kept = ("source",) if layout.raw_meta_path(raw).exists() else ()
        stages = (*kept, *(t.ledger_stage for t in self.requires()))
        return ledger.unrecorded(paths().root(), self.color, self.year, self.month, stages)

    def complete(self) -> bool:
        return all(t.complete() for t in luigi.task.flatten(self.requires())) and not self.unrecorded()

    def run(self) -> None:
        missing = self.unrecorded()
        for task in self._stage_tasks():
            if task.ledger_stage in missing:
                task.record_stage()
        if missing:
            GCSObject(color=self.color, year=self.year, month=self.month).publish_manifest()


class IngestRange(luigi.WrapperTask):
    """Ingest months of several colors: ``--start 2019-01 --stop 2021-07`` (stop INCLUSIVE)
    or the course's parent-flow form ``--year 2021 --months 1,2,3``."""

    colors = luigi.Parameter(default=",".join(COLORS), description=f"comma-separated, of {', '.join(COLORS)}")
    start = luigi.OptionalParameter(default=None, description="first month, YYYY-MM")
    stop = luigi.OptionalParameter(default=None, description="last month, YYYY-MM, inclusive (default: start)")
    year = OptionalYearParameter(default=None, description="with --months: the year of the months")
    months = luigi.OptionalParameter(default=None, description="with --year: comma-separated months, e.g. 1,2,3")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # validate now, before anything is scheduled: a bad value is an input error (exit 40)
        self._colors = self.color_list()
        self._months = list(self.month_list())

    def color_list(self) -> list[str]:
        colors = [validate_color(c.strip()) for c in self.colors.split(",") if c.strip()]
        if not colors:
            raise InvalidInput(f"colors {self.colors!r} is not valid: use some of {', '.join(COLORS)}")
        return list(dict.fromkeys(colors))

    def month_list(self) -> Iterator[tuple[int, int]]:
        if (self.start is None) == (self.year is None):
            raise InvalidInput("give either --start YYYY-MM [--stop YYYY-MM] or --year YYYY --months 1,2,3")
        if self.start is not None:
            first = parse_year_month(self.start)
            last = parse_year_month(self.stop) if self.stop else first
            if last < first:
                raise InvalidInput(f"stop {self.stop} is before start {self.start}")
            yield from month_span(first, last)
            return
        if not self.months:
            raise InvalidInput("--year needs --months, e.g. --months 1,2,3")
        try:
            numbers = sorted({int(m) for m in self.months.split(",") if m.strip()})
        except ValueError:
            raise InvalidInput(f"months {self.months!r} is not valid: use numbers 1-12, e.g. 1,2,3") from None
        for m in numbers:
            yield validate_month(self.year, m)

    def requires(self) -> list[IngestMonth]:
        return [IngestMonth(color=c, year=y, month=m) for c in self._colors for y, m in self._months]

    def run_summary(self) -> str:
        """The webhook's run summary (``[tlc.alerts] summary``)."""
        first, last = self._months[0], self._months[-1]
        span = f"{first[0]}-{first[1]:02d}" + (f" to {last[0]}-{last[1]:02d}" if last != first else "")
        months = len(self._colors) * len(self._months)
        return f"{self} done: {months} month(s) of {', '.join(self._colors)}, {span}, complete in every sink"

    def complete(self) -> bool:
        """The whole range in one pass: one listing or query per sink and color, not per month.

        True only if every month of every stage checks out; otherwise luigi goes on to check
        each month on its own, as for any task, and runs what is missing.
        """
        months = self.requires()
        stages = [t for month in months for t in luigi.task.flatten(month.requires())]
        return all_complete(stages) and not any(month.unrecorded() for month in months)


def all_complete(tasks: list[luigi.Task]) -> bool:
    """Use a task class's ``completed_among`` where it has one, ``complete()`` elsewhere."""
    by_class: dict[type, list[luigi.Task]] = {}
    for task in tasks:
        by_class.setdefault(type(task), []).append(task)
    for cls, group in by_class.items():
        bulk = getattr(cls, "completed_among", None)
        done = bulk(group) if bulk else {t.task_id for t in group if t.complete()}
        if len(done) < len(group):
            return False
    return True


class IngestCatchUp(luigi.WrapperTask):
    """The cron job: ingest every month of the last ``window`` that the source has published.

    Months are probed with a HEAD request each; a month not published yet is skipped (and
    named in the log), a month already done costs one ``complete()`` check, and a failure of
    any month makes the run exit non-zero through luigi's ``[retcode]`` settings.
    """

    colors = luigi.OptionalParameter(default=None, description="comma-separated colors (default [tlc.schedule])")
    window = OptionalWindowParameter(default=None, description="months back to look, 1-240 (default [tlc.schedule])")
    until = luigi.OptionalParameter(default=None, description="last month to consider, YYYY-MM (default: last ended)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cfg = schedule()
        colors = self.colors or cfg.colors
        window = self.window if self.window is not None else cfg.window_months
        if not 1 <= window <= 240:
            raise InvalidInput(f"window {window} is not valid: use 1-240 months")
        last = parse_year_month(self.until) if self.until else last_complete_month()
        first = last
        for _ in range(window - 1):
            first = (first[0] - 1, 12) if first[1] == 1 else (first[0], first[1] - 1)
        first = max(first, (FIRST_YEAR, 1))
        self._range = IngestRange(colors=colors, start=f"{first[0]}-{first[1]:02d}", stop=f"{last[0]}-{last[1]:02d}")
        self._published: list[IngestMonth] | None = None
        self._unpublished: list[str] = []

    def requires(self) -> list[IngestMonth]:
        if self._published is None:
            src = source()
            published, missing = [], []
            for month in self._range.requires():
                if month.complete() or is_published(
                    source_url(src.base_url(), month.color, month.year, month.month),
                    timeout=src.timeout_seconds,
                    attempts=src.attempts,
                    backoff=src.backoff_seconds,
                ):
                    published.append(month)
                else:
                    missing.append(month.label)
            if missing:
                logger.info("catch-up: not published yet, skipped: %s", ", ".join(missing))
            self._published, self._unpublished = published, missing
        return self._published

    def run_summary(self) -> str:
        """The webhook's run summary (``[tlc.alerts] summary``)."""
        done = self.requires()
        waiting = f"; not published yet: {', '.join(self._unpublished)}" if self._unpublished else ""
        return f"{self} done: {len(done)} month(s) complete in every sink{waiting}"
