"""The reading side's contract, one for every source kind: whatever fails while a file is read is the file's.

A value pyarrow cannot parse is the data's fault (``DataError``), an unreadable stream the
file's (``CorruptSource``), anything else met while reading too (``DataError`` naming it): each
is a ``SourceRefused``, which the conversion task answers by moving the download aside, so a
month never gets stuck on a file nor is refused for a fault of our own (our writes fail as
``LocalWriteError``, elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
from isal import isal_zlib

from tlc.errors import CorruptSource, DataError, SourceRefused, first_line


@contextmanager
def read_errors(src: Path) -> Iterator[None]:
    try:
        yield
    except (SourceRefused, MemoryError):
        raise
    except pa.ArrowInvalid as exc:
        raise DataError(f"{src.name}: {first_line(exc)}") from None
    except (OSError, EOFError, isal_zlib.error) as exc:
        raise CorruptSource(f"{src.name}: {first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - any other reading failure is the file's too: that is the contract
        raise DataError(f"{src.name}: cannot be read: {type(exc).__name__}: {first_line(exc)}") from None
