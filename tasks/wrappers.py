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

from tasks.bigquery import BigQueryTable
from tasks.download import download_task
from tasks.gcs import GCSObject
from tasks.params import MonthTask, OptionalWindowParameter, OptionalYearParameter
from tasks.parquet import ParquetFile
from tasks.postgres import PostgresTable
from tlc import ledger
from tlc.config import ScheduleConfig, SourceConfig
from tlc.errors import InvalidInput
from tlc.month import (
    COLORS,
    CSV_RELEASES,
    Month,
    last_complete_month,
    month_units,
    months_back,
    parse_colors,
    parse_span,
    parse_year_month,
    validate_month,
)
from tlc.sources import kinds
from tlc.sources.http import is_published

logger = logging.getLogger("luigi-interface")


class IngestMonth(MonthTask):
    """Everything one month needs, from the source to every sink, and its manifest whole.

    A worker killed after a sink committed but before it wrote its manifest entry leaves the
    sink complete and the entry missing; this task's run() writes such entries from the
    sinks' state, so every ingested month's manifest names every stage.
    """

    def requires(self) -> list[MonthTask]:
        return [cls.of(self.unit) for cls in (ParquetFile, GCSObject, BigQueryTable, PostgresTable)]

    def _stage_tasks(self) -> list[MonthTask]:
        return [download_task(self.unit), *self.requires()]

    def unrecorded(self) -> list[str]:
        """Manifest entries to write; the source's only while the raw zone holds the download."""
        from tlc.gcs.lake import Lake

        kept = ("source",) if download_task(self.unit).output().exists() else ()
        stages = (*kept, *(t.ledger_stage for t in self.requires()))
        report = ParquetFile.of(self.unit).output().report()
        return ledger.unrecorded(Lake.from_config(), self.unit, stages, report)

    def complete(self) -> bool:
        return all(t.complete() for t in self.requires()) and not self.unrecorded()

    def run(self) -> None:
        missing = self.unrecorded()
        for task in self._stage_tasks():
            if task.ledger_stage in missing:
                task.record_stage()


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
        self._units = range_units(self._colors, self._months)

    def color_list(self) -> list[str]:
        return parse_colors(self.colors)

    def month_list(self) -> Iterator[tuple[int, int]]:
        if (self.start is None) == (self.year is None):
            raise InvalidInput("give either --start YYYY-MM [--stop YYYY-MM] or --year YYYY --months 1,2,3")
        if self.start is not None:
            yield from parse_span(self.start, self.stop)
            return
        if not self.months:
            raise InvalidInput("--year needs --months, e.g. --months 1,2,3")
        try:
            numbers = sorted({int(m) for m in self.months.split(",") if m.strip()})
        except ValueError:
            raise InvalidInput(f"months {self.months!r} is not valid: use numbers 1-12, e.g. 1,2,3") from None
        for m in numbers:
            yield validate_month(self.year, m)

    def units(self) -> list[Month]:
        """The range's months, each with its source kind."""
        return list(self._units)

    def requires(self) -> list[IngestMonth]:
        return [IngestMonth.of(unit) for unit in self._units]

    def run_summary(self) -> str:
        """The webhook's run summary (``[tlc.alerts] summary``)."""
        first, last = self._months[0], self._months[-1]
        span = f"{first[0]}-{first[1]:02d}" + (f" to {last[0]}-{last[1]:02d}" if last != first else "")
        months = len(self._units)
        return f"{self} done: {months} month(s) of {', '.join(self._colors)}, {span}, complete in every sink"

    def complete(self) -> bool:
        """The whole range in one pass: one listing or query per sink and color, not per month.

        True only if every month of every stage checks out; otherwise luigi goes on to check
        each month on its own, as for any task, and runs what is missing.
        """
        months = self.requires()
        stages = [t for month in months for t in luigi.task.flatten(month.requires())]
        return all_complete(stages) and not any(month.unrecorded() for month in months)


def range_units(colors: list[str], months: list[tuple[int, int]]) -> list[Month]:
    """Every color's months with their source kinds; a color's months without records are left out.

    Months before a service's records start (green before 2013-08, ...) or that the configured
    source does not publish (fhvhv under ``kind = csv``) are named once in the log and left
    out, so a range over all four services still works; a range left with nothing is an input
    error, with the reason.
    """
    units, refused = month_units(colors, months, SourceConfig().kind)
    if not units:
        raise next(iter(refused.values()))[1]
    for color, (count, first) in refused.items():
        logger.info("range: %d month(s) of %s left out: %s", count, color, first)
    return units


def archived_months(units: list[Month]) -> set[Month]:
    """Months the catch-up must not wait for: the CSV releases' that the releases will never publish.

    The DataTalksClub releases are an archive that ended with 2021-07; under ``kind = csv`` a
    window of newer months would be "not published yet" forever. They are named once, and a
    window that holds nothing else is an input error saying so, never a silent exit 0.
    """
    last = CSV_RELEASES[1]
    archived = {u for u in units if u.source == "csv" and (u.year, u.month) > last}
    if archived and len(archived) == len(units):
        first, final = min((u.year, u.month) for u in units), max((u.year, u.month) for u in units)
        raise InvalidInput(
            f"the CSV source publishes no new months: its releases end with {last[0]}-{last[1]:02d}, the "
            f"catch-up window is {first[0]}-{first[1]:02d} to {final[0]}-{final[1]:02d}; set [tlc.source] kind = auto "
            "or parquet to follow the TLC's monthly files"
        )
    if archived:
        names = ", ".join(u.label for u in sorted(archived))
        logger.info("catch-up: the CSV releases end with %d-%02d and publish no new months: %s", *last, names)
    return archived


def all_complete(tasks: list[luigi.Task]) -> bool:
    """Every task's output exists, asked in bulk: one ``bulk_exists`` per Target class that has one."""
    by_class: dict[type, list[luigi.Target]] = {}
    for task in tasks:
        for target in luigi.task.flatten(task.output()):
            by_class.setdefault(type(target), []).append(target)
    for cls, targets in by_class.items():
        bulk = getattr(cls, "bulk_exists", None)
        if not all(bulk(targets) if bulk else (t.exists() for t in targets)):
            return False
    return True


class IngestCatchUp(luigi.WrapperTask):
    """The cron job: ingest every month of the last ``window`` that the source has published.

    Months are probed with a HEAD request each at their source kind's URL (the TLC's Parquet
    files under ``kind = auto``); a month not published yet is skipped (and named once in the
    log), a month already done costs one ``complete()`` check, and a failure of any month makes
    the run exit non-zero through luigi's ``[retcode]`` settings. The CSV releases publish no
    new months: a window they cannot fill is refused (see ``archived_months``).
    """

    colors = luigi.OptionalParameter(default=None, description="comma-separated colors (default [tlc.schedule])")
    window = OptionalWindowParameter(default=None, description="months back to look, 1-240 (default [tlc.schedule])")
    until = luigi.OptionalParameter(default=None, description="last month to consider, YYYY-MM (default: last ended)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cfg = ScheduleConfig()
        colors = self.colors or cfg.colors
        window = self.window if self.window is not None else cfg.window_months
        if not 1 <= window <= 240:
            raise InvalidInput(f"window {window} is not valid: use 1-240 months")
        last = parse_year_month(self.until) if self.until else last_complete_month()
        first = months_back(last, window)
        self._range = IngestRange(colors=colors, start=f"{first[0]}-{first[1]:02d}", stop=f"{last[0]}-{last[1]:02d}")
        self._archived = archived_months(self._range.units())
        self._published: list[IngestMonth] | None = None
        self._unpublished: list[str] = []

    def requires(self) -> list[IngestMonth]:
        if self._published is None:
            src = SourceConfig()
            published, missing = [], []
            for month in self._range.requires():
                if month.unit in self._archived:
                    continue
                if month.complete() or is_published(kinds.month_url(month.unit, src), src.retry()):
                    published.append(month)
                else:
                    missing.append(month.unit.label)
            if missing:
                logger.info("catch-up: not published yet, skipped: %s", ", ".join(missing))
            self._published, self._unpublished = published, missing
        return self._published

    def run_summary(self) -> str:
        """The webhook's run summary (``[tlc.alerts] summary``)."""
        done = self.requires()
        waiting = f"; not published yet: {', '.join(self._unpublished)}" if self._unpublished else ""
        return f"{self} done: {len(done)} month(s) complete in every sink{waiting}"
