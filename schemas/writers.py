"""Write a read delivery back in its contract's format (the inverse of :mod:`schemas.readers`).

Used by the partner-side pseudonymisation: the reader's text table, with the identity column
replaced, is written so that the same reader reads it back to the same rows **on the same lines**
(a quarantine record points at the partner's own line numbers either way). Lines that held no
record, or a record the reader could not read, become filler lines the manifest accounts for:
blank lines (delimited, JSON lines), empty rows (XLSX), blank records (fixed width, whose trailer
count must stay). A fixed-width record cannot fit a sealed code into the 11 positions of an
identity code, so its sealed variant (:func:`sealed_contract`) blanks those positions and
appends the token after the record.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.contract import Contract


def sealed_contract(contract: Contract, token_chars: int) -> Contract:
    """The contract a sealed file of this partner is read with: the same, except that a
    fixed-width record carries the identity token after its last position."""
    if contract.format != "fixed_width":
        return contract
    length = contract.file["record_length"]
    columns = tuple(dataclasses.replace(c, start=length + 1, end=length + token_chars) if c.type == "identity" else c
                    for c in contract.columns)
    return dataclasses.replace(contract, columns=columns, file={**contract.file, "record_length": length + token_chars})


def _gaps(lines: np.ndarray, spans: np.ndarray, first: int) -> np.ndarray:
    """Filler lines before each record: records start at ``lines`` and take ``spans`` lines."""
    ends = np.concatenate([[first - 1], (lines + spans - 1)[:-1]])
    gaps = lines - ends - 1
    if (gaps < 0).any():
        raise ValueError("records overlap: lines out of order")
    return gaps


def _text_records(contract: Contract, table: pa.Table) -> pa.Array:
    spec = contract.file
    delimiter = spec["delimiter"]
    fields = []
    for c in contract.columns:
        v = table.column(c.name)
        if spec.get("quoting"):  # quote every value: a quoted empty string still reads as null
            v = pc.if_else(pc.is_null(v), "", pc.binary_join_element_wise('"', pc.replace_substring(v, '"', '""'),
                                                                           '"', ""))
        fields.append(pc.fill_null(v, ""))
    return pc.binary_join_element_wise(*fields, delimiter)


def _join(records: pa.Array, gaps: np.ndarray, newline: str) -> bytes:
    """The records, each after its filler lines and ended by ``newline``, as UTF-8 bytes, built in
    Arrow (a backlog delivery is millions of records)."""
    if not len(records):
        return b""
    prefix = pc.binary_repeat(pa.scalar(newline), pa.array(gaps, pa.int64()))
    lines = pc.binary_join_element_wise(prefix, records, pa.scalar(newline), "").cast(pa.large_string())
    lines = pa.concat_arrays(lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines])  # one buffer, offset 0
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64, count=len(lines) + 1)
    return lines.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]]


def _encoded(utf8: bytes, encoding: str) -> bytes:
    return utf8 if encoding.replace("_", "-").lower() in ("utf-8", "utf8") else utf8.decode("utf-8").encode(encoding)


def write_delimited(contract: Contract, table: pa.Table, path: Path) -> None:
    spec = contract.file
    names = [c.name for c in contract.columns]
    header = spec["delimiter"].join(f'"{n}"' if spec.get("quoting") else n for n in names)
    records = _text_records(contract, table) if table.num_rows else pa.array([], pa.string())
    spans = pc.count_substring(records, "\n").to_numpy(zero_copy_only=False).astype(np.int64) + 1
    body = _join(records, _gaps(table.column("_line").to_numpy(), spans, 2), "\n")
    data = _encoded((header + "\n").encode("utf-8") + body, contract.encoding)
    path.write_bytes((b"\xef\xbb\xbf" if spec.get("bom") else b"") + data)


def write_jsonl(contract: Contract, table: pa.Table, path: Path) -> None:
    names = [c.name for c in contract.columns]
    rows = table.select(names).to_pylist()
    records = pa.array([json.dumps(r, ensure_ascii=False) for r in rows], pa.string())
    lines = table.column("_line").to_numpy()
    path.write_bytes(_encoded(_join(records, _gaps(lines, np.ones(len(records), np.int64), 1), "\n"),
                              contract.encoding))


def write_xlsx(contract: Contract, table: pa.Table, path: Path) -> None:
    import openpyxl
    from openpyxl.cell import WriteOnlyCell

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet(contract.file["sheet"])
    names = [c.name for c in contract.columns]
    sheet.append(names)
    lines = table.column("_line").to_numpy()
    gaps = _gaps(lines, np.ones(len(lines), np.int64), 2)
    for gap, row in zip(gaps, table.select(names).to_pylist()):
        for _ in range(int(gap)):
            sheet.append([])
        cells = []
        for value in row.values():
            cell = WriteOnlyCell(sheet, value=value)
            if value is not None:
                cell.data_type = "s"  # text stays text (a value starting with '=' is no formula)
            cells.append(cell)
        sheet.append(cells)
    workbook.save(path)


def write_fixed_width(contract: Contract, table: pa.Table, path: Path, raw_path: Path, records: int) -> None:
    """``contract`` is the sealed one; header and trailer are the raw file's (the reader checked
    that they hold only the period, the creation date and the count)."""
    raw = Path(raw_path).read_bytes().decode(contract.encoding).split(contract.file.get("line_end", "\r\n"))
    header, trailer = raw[0], [line for line in raw if line][-1]
    length = contract.file["record_length"]
    blank = pa.array([" " * length], pa.string())
    if table.num_rows:
        pieces, position = [], 1
        for c in sorted(contract.columns, key=lambda c: c.start):
            if c.start > position:
                pieces.append(pa.scalar(" " * (c.start - position)))
            pieces.append(pc.utf8_rpad(pc.fill_null(table.column(c.name), ""), c.end - c.start + 1))
            position = c.end + 1
        text = pa.concat_arrays([pc.binary_join_element_wise(*pieces, "").combine_chunks(), blank])
    else:
        text = blank
    order = np.full(records, len(text) - 1, dtype=np.int64)  # every data line blank, unless a record is on it
    order[table.column("_line").to_numpy() - 2] = np.arange(table.num_rows)  # data records start on line 2
    newline = contract.file.get("line_end", "\r\n")
    body = _join(text.take(pa.array(order)), np.zeros(records, np.int64), newline)
    path.write_bytes(_encoded((header + newline).encode("utf-8") + body + (trailer + newline).encode("utf-8"),
                              contract.encoding))


def write_delivery(contract: Contract, table: pa.Table, path: Path, raw_path: Path, records: int) -> None:
    """Write ``table`` (text columns named as in the partner's file, plus ``_line``) to ``path``
    in ``contract``'s format; ``records`` is how many data records the raw file held."""
    table = table.sort_by("_line")
    if contract.format == "delimited":
        write_delimited(contract, table, path)
    elif contract.format == "jsonl":
        write_jsonl(contract, table, path)
    elif contract.format == "xlsx":
        write_xlsx(contract, table, path)
    else:
        write_fixed_width(contract, table, path, raw_path, records)
