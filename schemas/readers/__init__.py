"""One reader per file-format family, each driven by a partner contract.

A reader turns one delivery file into an Arrow table of *text* columns named as in
the partner's file plus ``_line`` (1-based line or spreadsheet row), and a list of
row errors it met while reading (``(line, reason)``). Typing and validation happen
later, in DuckDB, for every format alike. A reader raises :class:`DeliveryRejected`
for what the spec says rejects a whole delivery.

No reader message ever quotes file content: it could hold an identity code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from schemas.contract import Contract

#: rows a reader may put in one block of its own buffers (staging checks a block at a time)
BLOCK_ROWS = 1_000_000


class DeliveryRejected(Exception):
    """The whole delivery is rejected; the message is the reason a partner can act on."""


@dataclass
class ReadResult:
    table: pa.Table                      # text columns + _line (int64)
    row_errors: list[tuple[int, str]] = field(default_factory=list)
    codes_redacted: int = 0              # free-text values the partner already redacted (a sealed delivery)

    @property
    def rows_read(self) -> int:
        return self.table.num_rows + len(self.row_errors)


def read_delivery(contract: Contract, path: Path, period: str) -> ReadResult:
    """Read one delivery file with the reader for its contract's format."""
    from schemas.readers import delimited, fixed_width, jsonl, xlsx

    readers = {"delimited": delimited.read, "fixed_width": fixed_width.read,
               "jsonl": jsonl.read, "xlsx": xlsx.read}
    result = readers[contract.format](contract, Path(path), period)
    if result.rows_read == 0:
        raise DeliveryRejected("the file holds no data records (empty or header only)")
    return result


def decode(data: bytes, encoding: str) -> str:
    """Decode strictly; a failure names the line of the first bad byte, never the bytes."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DeliveryRejected(
            f"the file cannot be decoded as {encoding.upper()} (first bad byte on line {line}): "
            f"export it again in {encoding.upper()}") from None


def check_columns(contract: Contract, header: list[str]) -> None:
    """A required column missing from the header rejects the delivery."""
    present = set(header)
    missing = [c.name for c in contract.columns if c.name not in present and c.required]
    if missing:
        raise DeliveryRejected(f"required column(s) missing from the header: {', '.join(missing)}")


def text_table(columns: dict[str, list | pa.Array | pa.ChunkedArray], lines) -> pa.Table:
    arrays = {name: values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, pa.string())
              for name, values in columns.items()}
    arrays["_line"] = pa.array(lines, pa.int64())
    return pa.table(arrays)
