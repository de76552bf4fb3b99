"""Cleaning rules from the course flows, as opt-in filters over the lossless lake.

The seeds drop ``passenger_count == 0``, fill or drop nulls, and drop pickups outside the
month. Each of those silently loses real trips, so here every rule is off by default and,
when on, every row it drops is counted in the quality report under the rule's name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pyarrow as pa
import pyarrow.compute as pc

from tlc.errors import InvalidInput


@dataclass(frozen=True)
class Rules:
    drop_zero_passengers: bool = False  # Mage seed: passenger_count == 0
    drop_missing_vendor: bool = False  # the month-end rows with empty VendorID, RatecodeID, ...
    drop_out_of_month: bool = False  # pickups outside the file's month
    fill_null_passenger_count: int | None = None  # Prefect seed: fillna(0)

    def active(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if v is not False and v is not None}

    def check(self, column_names: list[str]) -> None:
        needs = {
            "drop_zero_passengers": "passenger_count",
            "fill_null_passenger_count": "passenger_count",
            "drop_missing_vendor": "vendor_id",
        }
        for rule, column in needs.items():
            if rule in self.active() and column not in column_names:
                raise InvalidInput(f"cleaning rule {rule} needs column {column}, which this color lacks")


def apply(
    batch: pa.RecordBatch, rules: Rules, out_of_month: pa.ChunkedArray | pa.Array, dropped: dict[str, int]
) -> pa.RecordBatch:
    """Fill, then drop, counting each dropped row once, under the first rule that took it."""
    if rules.fill_null_passenger_count is not None:
        i = batch.schema.get_field_index("passenger_count")
        filled = pc.fill_null(batch.column(i), rules.fill_null_passenger_count)
        batch = batch.set_column(i, "passenger_count", filled)
    drops: list[tuple[str, pa.Array]] = []
    if rules.drop_missing_vendor:
        drops.append(("drop_missing_vendor", pc.is_null(batch.column("vendor_id"))))
    if rules.drop_zero_passengers:
        drops.append(("drop_zero_passengers", pc.fill_null(pc.equal(batch.column("passenger_count"), 0), False)))
    if rules.drop_out_of_month:
        drops.append(("drop_out_of_month", out_of_month))
    if not drops:
        return batch
    taken = pa.repeat(pa.scalar(False), batch.num_rows)
    for name, mask in drops:
        new = pc.and_(mask, pc.invert(taken))
        dropped[name] = dropped.get(name, 0) + pc.sum(new).as_py() or 0
        taken = pc.or_(taken, mask)
    return batch.filter(pc.invert(taken))
