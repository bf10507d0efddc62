"""One reader per file-format family, each driven by a partner contract.

A reader turns one delivery file into an Arrow table of *text* columns named as in
the partner's file plus ``_line`` (1-based line or spreadsheet row), and a list of
row errors it met while reading (``(line, reason)``). Typing and validation happen
later, in DuckDB, for every format alike. A reader raises :class:`DeliveryRejected`
for what the spec says rejects a whole delivery.

No reader message ever quotes file content: it could hold an identity code.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from schemas.contract import Contract

#: rows a reader may put in one block of its own buffers (staging checks a block at a time)
BLOCK_ROWS = 1_000_000


class DeliveryRejected(Exception):
    """The whole delivery is rejected; the message is the reason a partner can act on."""


class ReadResult:
    """What a reader read: the rows as a table of text columns + ``_line`` (int64), the row
    errors it met (``(line, reason)``), and how many free-text values the partner already
    redacted (a sealed delivery).

    A reader of national files may hand its rows on as a stream of tables instead (with the
    count of records it will yield or report, known before the first row): staging takes them
    a piece at a time, so the file is never held whole; ``row_errors`` is then complete once
    the stream is. ``table`` and ``row_errors`` drain a stream not yet taken into one table,
    for callers that want the read whole."""

    def __init__(self, rows: pa.Table | Iterator[pa.Table], row_errors: list[tuple[int, str]] | None = None,
                 codes_redacted: int = 0, records: int | None = None):
        self._rows = rows
        self._row_errors = row_errors if row_errors is not None else []
        self.codes_redacted = codes_redacted
        self._records = records if records is not None else rows.num_rows + len(self._row_errors)

    @property
    def table(self) -> pa.Table:
        if self._rows is None:
            raise RuntimeError("the rows were taken already (by pieces(), or by a read that failed)")
        if not isinstance(self._rows, pa.Table):
            stream, self._rows = self._rows, None
            self._rows = pa.concat_tables(list(stream))
        return self._rows

    @property
    def row_errors(self) -> list[tuple[int, str]]:
        if self._rows is not None:
            self.table  # noqa: B018 (a stream's errors are complete once it is read)
        return self._row_errors

    @property
    def rows_read(self) -> int:
        """Rows loaded or in error: known before a stream is read."""
        return self._records

    def pieces(self, rows: int) -> Iterator[pa.Table]:
        """The rows in tables of at most ``rows`` (a stream in its own blocks, of about as many), handed over: this
        result keeps no reference, so each piece is freed once its taker drops it."""
        source, self._rows = self._rows, None
        if isinstance(source, pa.Table):
            batches = source.to_batches(max_chunksize=rows)
            if not batches:
                yield source
            del source
            while batches:
                yield pa.Table.from_batches([batches.pop(0)])
        else:
            yield from source


def read_delivery(contract: Contract, path: Path, period: str) -> ReadResult:
    """Read one delivery file with the reader for its contract's format."""
    from schemas.readers import delimited, fixed_width, jsonl, xlsx

    readers = {"delimited": delimited.read, "fixed_width": fixed_width.read,
               "jsonl": jsonl.read, "xlsx": xlsx.read}
    result = readers[contract.format](contract, Path(path), period)
    if result.rows_read == 0:
        raise DeliveryRejected("the file holds no data records (empty or header only)")
    return result


def decode(data: bytes, encoding: str, first_line: int = 1) -> str:
    """Decode strictly; a failure names the line of the first bad byte, never the bytes
    (``first_line``: the line ``data`` starts on, when it is a part of the file)."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + first_line
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
