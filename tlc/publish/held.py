"""What a publish made: per engine, the views and the months each holds, read back from its months view."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Published:
    engine: str
    where: str  # the schema or dataset of the views, as dbt's sources name it
    months: dict[str, dict[dt.date, int]] = field(default_factory=dict)  # color -> {source_month: rows}

    @classmethod
    def from_rows(cls, engine: str, where: str, colors: Iterable[str], rows: Iterable[tuple]) -> Published:
        """``rows``: (color, source_month, row_count) as the months view returns them."""
        held = cls(engine, where, {c: {} for c in colors})
        for color, month, count in rows:
            held.months[color][month] = int(count)
        return held

    def lines(self) -> list[str]:
        out = []
        for color, months in self.months.items():
            span = f"{min(months):%Y-%m}..{max(months):%Y-%m}" if months else "-"
            view = f"{self.where}.{color}_tripdata"
            rows = sum(months.values())
            out.append(f"{self.engine:<9}{view:<42}{len(months):>4} month(s) {span:<17}{rows:>13,} rows")
        out.append(f"{self.engine:<9}{self.where}.months: the months each view holds")
        return out
