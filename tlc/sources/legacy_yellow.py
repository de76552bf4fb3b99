"""Yellow 2009 and 2010, the TLC's layouts from before taxi zones, read into the canonical yellow schema.

The TLC republished these years as Parquet in their original layouts: 2009 with
``vendor_name, Trip_Pickup_DateTime, ..., Start_Lon, Start_Lat, Rate_Code, store_and_forward,
End_Lon, End_Lat, Payment_Type, Fare_Amt, surcharge, mta_tax, Tip_Amt, Tolls_Amt, Total_Amt``
and 2010 with ``vendor_id, pickup_datetime, ..., pickup_longitude, ..., surcharge, ...``. The
layout is recognised from the file's columns (any GPS coordinate column), not from its year.

How they map (also in README.md, "The canonical schema"), so one yellow table holds 2009 to now:

* the GPS coordinates are not read: the canonical yellow locates trips by taxi zone, which
  these years do not have, so ``pu_location_id`` and ``do_location_id`` are null (the raw file
  keeps the coordinates); so are ``improvement_surcharge`` and the later surcharges, which did
  not exist yet; each month's quality report lists them as missing columns;
* the vendor and payment names become the data dictionary's codes: ``CMT`` 1 and ``VTS`` 2
  (VeriFone, today's 2), ``DDS`` (Digital Dispatch Systems, gone by 2011, no code) null;
  Credit/CRD/CRE 1, Cash/CAS/CSH 2, No Charge/NOC 3, Dispute/DIS 4, UNK 5;
* ``store_and_forward`` 0/1 (or N/Y) becomes ``N``/``Y``; ``surcharge`` is ``extra``;
* any other value of a coded column fails the month naming column and value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from tlc import schema
from tlc.errors import DataError, SchemaMismatch

COORDINATES = frozenset(
    {"start_lon", "start_lat", "end_lon", "end_lat"}
    | {"pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude"}
)
# Source name (lower case) of either year -> canonical yellow column.
COLUMNS = {
    **dict.fromkeys(("vendor_name", "vendor_id"), "vendor_id"),
    **dict.fromkeys(("trip_pickup_datetime", "pickup_datetime"), "pickup_datetime"),
    **dict.fromkeys(("trip_dropoff_datetime", "dropoff_datetime"), "dropoff_datetime"),
    "passenger_count": "passenger_count",
    "trip_distance": "trip_distance",
    "rate_code": "ratecode_id",
    **dict.fromkeys(("store_and_forward", "store_and_fwd_flag"), "store_and_fwd_flag"),
    "payment_type": "payment_type",
    **dict.fromkeys(("fare_amt", "fare_amount"), "fare_amount"),
    "surcharge": "extra",
    "mta_tax": "mta_tax",
    **dict.fromkeys(("tip_amt", "tip_amount"), "tip_amount"),
    **dict.fromkeys(("tolls_amt", "tolls_amount"), "tolls_amount"),
    **dict.fromkeys(("total_amt", "total_amount"), "total_amount"),
}
REQUIRED = ("pickup_datetime", "dropoff_datetime", "passenger_count", "trip_distance", "fare_amount", "total_amount")

VENDORS: dict[str, int | None] = {"CMT": 1, "VTS": 2, "DDS": None}
PAYMENTS: dict[str, int | None] = {
    **dict.fromkeys(("CREDIT", "CRD", "CRE"), 1),
    **dict.fromkeys(("CASH", "CAS", "CSH"), 2),
    **dict.fromkeys(("NO CHARGE", "NOC", "NO"), 3),
    **dict.fromkeys(("DISPUTE", "DIS"), 4),
    **dict.fromkeys(("UNK", "UNKNOWN"), 5),
}
FLAGS: dict[str, str | None] = {"0": "N", "N": "N", "1": "Y", "Y": "Y"}
# canonical column -> (codes, canonical type, may the source hold numbers)
CODED: dict[str, tuple[dict, pa.DataType, bool]] = {
    "vendor_id": (VENDORS, pa.int64(), False),
    "payment_type": (PAYMENTS, pa.int64(), False),
    "store_and_fwd_flag": (FLAGS, pa.string(), True),
}


@dataclass(frozen=True)
class LegacyLayout:
    file: str
    header: schema.HeaderMap

    def coded(self) -> set[str]:
        """Source names of the coded columns, whose types ``check_types`` judges instead."""
        return {s for s, c in zip(self.header.source, self.header.canonical, strict=True) if c in CODED}

    def check_types(self, arrow: pa.Schema) -> None:
        for name in self.coded():
            t = arrow.field(name).type
            numbers = CODED[self.header.canonical[self.header.source.index(name)]][2]
            text = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t)
            if not (text or pa.types.is_null(t) or (numbers and (pa.types.is_integer(t) or pa.types.is_floating(t)))):
                raise SchemaMismatch(
                    f"{self.file}: column {name!r} is of type {t}, which is not a yellow 2009-2010 code"
                )

    def decode(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch with its coded columns as the canonical codes, under their source names."""
        for name in self.coded():
            i = batch.schema.get_field_index(name)
            codes, target, _ = CODED[self.header.canonical[self.header.source.index(name)]]
            batch = batch.set_column(i, name, self._decode(batch.column(i), name, codes, target))
        return batch

    def _decode(self, arr: pa.Array, name: str, codes: dict, target: pa.DataType) -> pa.Array:
        if pa.types.is_null(arr.type):
            return pa.nulls(len(arr), target)
        try:
            if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type):
                arr = pc.cast(arr, pa.int64(), safe=True)
            text = pc.utf8_upper(pc.utf8_trim_whitespace(pc.cast(arr, pa.string())))
        except pa.ArrowInvalid as exc:
            raise DataError(f"{self.file}: column {name!r} holds a value that is not a code: {exc}") from None
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        index = pc.index_in(text, value_set=pa.array(list(codes), pa.string()))
        unknown = pc.and_(pc.is_null(index), pc.is_valid(text))
        if pc.any(unknown).as_py():
            value = pc.filter(text, unknown)[0].as_py()
            raise DataError(f"{self.file}: column {name!r} holds {value!r}, which is not one of {', '.join(codes)}")
        return pc.take(pa.array(list(codes.values()), target), index)


def layout_of(src: Path, color: str, names: list[str]) -> LegacyLayout | None:
    """The 2009-2010 layout's header map when the file has one (GPS coordinates), else None."""
    if color != "yellow" or not any(n.lower() in COORDINATES for n in names):
        return None
    unexpected = [n for n in names if n.lower() not in COLUMNS and n.lower() not in COORDINATES]
    mapped = [(n, COLUMNS[n.lower()]) for n in names if n.lower() in COLUMNS]
    canonical = [c for _, c in mapped]
    duplicated = sorted({c for c in canonical if canonical.count(c) > 1})
    missing = [c for c in REQUIRED if c not in canonical]
    if unexpected or duplicated or missing:
        parts = [f"{what} {items}" for what, items in (("unexpected columns", unexpected),
                 ("duplicated columns", duplicated), ("missing columns", missing)) if items]  # fmt: skip
        raise SchemaMismatch(f"{src.name}: yellow 2009-2010 layout not recognised: {'; '.join(parts)}")
    absent = [c.name for c in schema.YELLOW if c.name not in canonical]
    return LegacyLayout(src.name, schema.HeaderMap("yellow", [n for n, _ in mapped], canonical, absent))
