"""Validation of the (color, year, month) coordinates that name every unit of work.

Kept free of luigi so the same rules serve the task parameters, the range wrappers and the
scripts, and so a bad month is refused before anything is fetched or written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from tasks.errors import InvalidInput

COLORS: tuple[str, ...] = ("yellow", "green", "fhv")
FIRST_YEAR = 2009  # the TLC trip records start in January 2009


def validate_color(color: str) -> str:
    if color not in COLORS:
        raise InvalidInput(f"color {color!r} is not valid: use one of {', '.join(COLORS)}")
    return color


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


def month_bounds(year: int, month: int) -> tuple[dt.datetime, dt.datetime]:
    """[first instant, first instant of the next month) of a month, naive like the TLC data."""
    start = dt.datetime(year, month, 1)
    end = dt.datetime(year + 1, 1, 1) if month == 12 else dt.datetime(year, month + 1, 1)
    return start, end
