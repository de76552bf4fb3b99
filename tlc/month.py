"""The unit of work: one color's source file of one month, validated once, passed everywhere.

A ``Month`` is made at the parameter boundary (a luigi parameter, a wrapper's range, a CLI
flag) and every function below takes it whole, so a color, year or month is never validated
twice nor passed as three loose arguments that could be swapped. Kept free of luigi.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

from tlc.errors import InvalidInput

COLORS: tuple[str, ...] = ("yellow", "green", "fhv", "fhvhv")
FIRST_YEAR = 2009  # the TLC trip records start in January 2009
# The first month the TLC has records of, per service: green cabs started in August 2013, FHV
# records in 2015, High Volume FHV (Uber, Lyft, ...) in February 2019.
FIRST_MONTH: dict[str, tuple[int, int]] = {
    "yellow": (2009, 1),
    "green": (2013, 8),
    "fhv": (2015, 1),
    "fhvhv": (2019, 2),
}

# Where a month's file comes from. ``csv``: the DataTalksClub CSV.gz releases, the files the
# course reads (yellow, green and fhv, 2019-01 to 2021-07); ``parquet``: the TLC's own monthly
# Parquet files, every service and month since 2009. ``auto`` (luigi.cfg [tlc.source] kind)
# takes the releases for the course's months, so they land exactly as they always did, and
# the TLC for everything else.
SOURCES: tuple[str, ...] = ("csv", "parquet")
SOURCE_SETTINGS: tuple[str, ...] = ("auto", *SOURCES)
CSV_COLORS: tuple[str, ...] = ("yellow", "green", "fhv")
CSV_RELEASES: tuple[tuple[int, int], tuple[int, int]] = ((2019, 1), (2021, 7))


def validate_color(color: str) -> str:
    if color not in COLORS:
        raise InvalidInput(f"color {color!r} is not valid: use one of {', '.join(COLORS)}")
    return color


def parse_colors(text: str) -> list[str]:
    """``yellow,green`` as a list without repeats; an empty or unknown color is an input error."""
    colors = [validate_color(c.strip()) for c in text.split(",") if c.strip()]
    if not colors:
        raise InvalidInput(f"colors {text!r} is not valid: use some of {', '.join(COLORS)}")
    return list(dict.fromkeys(colors))


def validate_service_month(color: str, year: int, month: int) -> None:
    """Refuse a month before the service's records start: the TLC publishes nothing for it."""
    first = FIRST_MONTH[validate_color(color)]
    if (year, month) < first:
        raise InvalidInput(
            f"{color} {year}-{month:02d} is not valid: the TLC's {color} records start {first[0]}-{first[1]:02d}"
        )


def in_csv_releases(color: str, year: int, month: int) -> bool:
    """Is this one of the DataTalksClub releases' months (the course's)?"""
    return color in CSV_COLORS and CSV_RELEASES[0] <= (year, month) <= CSV_RELEASES[1]


def validate_setting(setting: str) -> str:
    if setting not in SOURCE_SETTINGS:
        raise InvalidInput(f"[tlc.source] kind {setting!r} is not valid: use one of {', '.join(SOURCE_SETTINGS)}")
    return setting


def resolve_source(setting: str, color: str, year: int, month: int) -> str:
    """The source kind of a month under a ``[tlc.source] kind`` setting (auto, csv, parquet)."""
    if validate_setting(setting) != "auto":
        return setting
    return "csv" if in_csv_releases(color, year, month) else "parquet"


def validate_source(color: str, source: str) -> str:
    if source not in SOURCES:
        raise InvalidInput(f"source kind {source!r} is not valid: use one of {', '.join(SOURCES)}")
    if source == "csv" and color not in CSV_COLORS:
        raise InvalidInput(
            f"{color} is published only as the TLC's Parquet, not in the CSV releases: "
            "use [tlc.source] kind = auto or parquet"
        )
    return source


def validate_month_number(month: int) -> int:
    if not 1 <= month <= 12:
        raise InvalidInput(f"month {month} is not valid: use 1-12")
    return month


def last_complete_month(today: dt.date | None = None) -> tuple[int, int]:
    """The newest month that has ended; a month still running cannot have been published."""
    today = today or dt.datetime.now(dt.UTC).date()
    first = today.replace(day=1) - dt.timedelta(days=1)
    return first.year, first.month


def validate_year(year: int, today: dt.date | None = None) -> int:
    newest, _ = last_complete_month(today)
    if not FIRST_YEAR <= year <= newest:
        raise InvalidInput(f"year {year} is not valid: use {FIRST_YEAR}-{newest}")
    return year


def validate_month(year: int, month: int, today: dt.date | None = None) -> tuple[int, int]:
    """Refuse months before the records start or that have not ended yet."""
    validate_month_number(month)
    validate_year(year, today)
    newest = last_complete_month(today)
    if (year, month) > newest:
        raise InvalidInput(
            f"month {year}-{month:02d} is not valid: it has not ended yet (latest is {newest[0]}-{newest[1]:02d})"
        )
    return year, month


def parse_year_month(text: str) -> tuple[int, int]:
    """Parse ``YYYY-MM`` strictly, so ``2021-1`` or ``2021/01`` is refused rather than guessed."""
    try:
        year_s, month_s = text.split("-")
        if len(year_s) != 4 or len(month_s) != 2:
            raise ValueError
        year, month = int(year_s), int(month_s)
    except ValueError:
        raise InvalidInput(f"month {text!r} is not valid: use YYYY-MM, e.g. 2021-01") from None
    return validate_month(year, month)


def month_span(start: tuple[int, int], stop: tuple[int, int]) -> Iterator[tuple[int, int]]:
    """Months from start to stop, both inclusive."""
    year, month = start
    while (year, month) <= stop:
        yield year, month
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def parse_span(start: str, stop: str | None) -> list[tuple[int, int]]:
    """``--start 2021-01 --stop 2021-03`` (stop inclusive, default start) as validated (year, month)s."""
    first = parse_year_month(start)
    last = parse_year_month(stop) if stop else first
    if last < first:
        raise InvalidInput(f"stop {stop} is before start {start}")
    return list(month_span(first, last))


def months_back(last: tuple[int, int], count: int) -> tuple[int, int]:
    """The first month of a window of ``count`` months ending with ``last``, never before 2009-01."""
    year, month = last
    for _ in range(count - 1):
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return max((year, month), (FIRST_YEAR, 1))


@dataclass(frozen=True, order=True)
class Month:
    """One color's month, valid by construction (an invalid one cannot exist).

    ``source`` is where its file comes from (``csv`` or ``parquet``), resolved once where the
    month enters (a task reads ``[tlc.source] kind``); left empty it is what ``kind = auto``
    gives. It is not part of the month's identity: one month is one month whatever its source.
    """

    color: str
    year: int
    month: int
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        validate_color(self.color)
        validate_month(self.year, self.month)
        validate_service_month(self.color, self.year, self.month)
        if not self.source:
            object.__setattr__(self, "source", resolve_source("auto", self.color, self.year, self.month))
        validate_source(self.color, self.source)

    @classmethod
    def parse(cls, color: str, text: str, source: str = "") -> Month:
        """``Month.parse("yellow", "2021-01")``."""
        year, month = parse_year_month(text)
        return cls(color, year, month, source)

    @property
    def key(self) -> str:
        """``2021-01``: how the month is written in the ledger, logs and object metadata."""
        return f"{self.year}-{self.month:02d}"

    @property
    def label(self) -> str:
        """``yellow 2021-01``: how a month is named in every message."""
        return f"{self.color} {self.key}"

    @property
    def stem(self) -> str:
        """``yellow_tripdata_2021-01``: the source file's name without its extension."""
        return f"{self.color}_tripdata_{self.key}"

    @property
    def first_day(self) -> dt.date:
        """The value of the ``source_month`` lineage column, which keys the month in every sink."""
        return dt.date(self.year, self.month, 1)

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """[first instant, first instant of the next month), naive like the TLC data."""
        start = dt.datetime(self.year, self.month, 1)
        end = dt.datetime(self.year + 1, 1, 1) if self.month == 12 else dt.datetime(self.year, self.month + 1, 1)
        return start, end


def month_units(
    colors: list[str], months: list[tuple[int, int]], setting: str
) -> tuple[list[Month], dict[str, tuple[int, InvalidInput]]]:
    """Every color's months with their source kinds under ``setting``, and per color the months
    that cannot be (before the service's records, or not published by the source): their
    count and the first reason."""
    validate_setting(setting)
    units: list[Month] = []
    refused: dict[str, tuple[int, InvalidInput]] = {}
    for color in colors:
        for year, month in months:
            try:
                units.append(Month(color, year, month, resolve_source(setting, color, year, month)))
            except InvalidInput as exc:
                count, first = refused.get(color, (0, exc))
                refused[color] = (count + 1, first)
    return units, refused
