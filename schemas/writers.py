"""Write a read delivery back in its contract's format (the inverse of :mod:`schemas.readers`).

Used by the partner-side pseudonymisation: the reader's text table, with the identity column
replaced, is written so that the same reader reads it back to the same rows **on the same lines**
(a quarantine record points at the partner's own line numbers either way). Lines that held no
record, or a record the reader could not read, become filler lines the manifest accounts for:
blank lines (delimited, JSON lines), empty rows (XLSX), blank records (fixed width, whose trailer
count must stay). A fixed-width record cannot fit a sealed code into the 11 positions of an
identity code, so its sealed variant (:func:`sealed_contract`) blanks those positions and
appends the token after the record.

The synthetic generator writes its deliveries with the same functions (:func:`write_file`):
names, headers, delimiters, quoting, encodings, byte-order marks, line ends, fixed-width
positions, header and trailer records, JSON keys and the sheet all come from the contract.
"""
from __future__ import annotations

import codecs
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.contract import Contract
from schemas.rendering import render_column


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
    return utf8 if codecs.lookup(encoding).name == "utf-8" else utf8.decode("utf-8").encode(encoding)


def write_delimited(contract: Contract, table: pa.Table, path: Path) -> None:
    spec = contract.file
    header = spec["delimiter"].join(c.name for c in contract.columns)  # names need no quotes
    newline = contract.line_end
    records = _text_records(contract, table) if table.num_rows else pa.array([], pa.string())
    # lines a record spans: a quoted value may hold LF, CRLF or a lone CR, each a line break to the reader
    breaks = [pc.count_substring(records, s).to_numpy(zero_copy_only=False).astype(np.int64) for s in ("\n", "\r", "\r\n")]
    spans = breaks[0] + breaks[1] - breaks[2] + 1
    body = _join(records, _gaps(table.column("_line").to_numpy(), spans, 2), newline)
    data = _encoded((header + newline).encode("utf-8") + body, contract.encoding)
    path.write_bytes((b"\xef\xbb\xbf" if spec.get("bom") else b"") + data)


def write_jsonl(contract: Contract, table: pa.Table, path: Path) -> None:
    """Text values as JSON strings, booleans as JSON ``true``/``false`` (as the partner writes them)."""
    names = [c.name for c in contract.columns]
    flags = {"true": True, "false": False}
    booleans = [c.name for c in contract.columns if c.type == "boolean"]
    rows = table.select(names).to_pylist()
    for row in rows:
        for name in booleans:
            row[name] = flags.get(row[name], row[name])
    records = pa.array([json.dumps(r, ensure_ascii=False) for r in rows], pa.string())
    lines = table.column("_line").to_numpy()
    path.write_bytes(_encoded(_join(records, _gaps(lines, np.ones(len(records), np.int64), 1), contract.line_end),
                              contract.encoding))


def write_xlsx(contract: Contract, table: pa.Table, path: Path, typed_as_text: pa.Array | None = None) -> None:
    """Text cells stay text; typed columns (dates, numbers) become Excel date and number cells,
    except on the rows of ``typed_as_text``, where a person typed them as text (dates in the
    contract's last listed format)."""
    import openpyxl
    from openpyxl.cell import WriteOnlyCell

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet(contract.file["sheet"])
    names = [c.name for c in contract.columns]
    sheet.append(names)
    lines = table.column("_line").to_numpy()
    gaps = _gaps(lines, np.ones(len(lines), np.int64), 2)
    rows = table.select(names).to_pylist()
    if typed_as_text is not None:
        typed = [c for c in contract.columns if not pa.types.is_string(table.schema.field(c.name).type)]
        texts = {c.name: render_column(c, table.column(c.name), c.formats[-1] if c.formats else None).to_pylist()
                 for c in typed}
        for i in np.flatnonzero(np.asarray(typed_as_text)):
            rows[i].update({name: text[i] for name, text in texts.items()})
    for gap, row in zip(gaps, rows):
        for _ in range(int(gap)):
            sheet.append([])
        cells = []
        for value in row.values():
            cell = WriteOnlyCell(sheet, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # text stays text (a value starting with '=' is no formula)
            cells.append(cell)
        sheet.append(cells)
    workbook.save(path)


def fixed_width_records(contract: Contract, table: pa.Table) -> pa.Array:
    """Each row as one record: every column left-aligned in its positions, blanks between."""
    pieces, position = [], 1
    for c in sorted(contract.columns, key=lambda c: c.start):
        if c.start > position:
            pieces.append(pa.scalar(" " * (c.start - position)))
        pieces.append(pc.utf8_rpad(pc.fill_null(table.column(c.name), ""), c.end - c.start + 1))
        position = c.end + 1
    return pc.binary_join_element_wise(*pieces, "").combine_chunks()


def fill_pattern(pattern: str, **values) -> str:
    """A header or trailer record from the contract's pattern: each named group replaced by its
    value (a number zero-padded to the group's ``\\d{n}``); checked against the pattern."""
    def group(m: re.Match) -> str:
        value, width = values[m["name"]], re.fullmatch(r"\\d\{(\d+)\}", m["body"])
        return str(value).zfill(int(width[1])) if width else str(value)

    text = re.sub(r"\(\?P<(?P<name>\w+)>(?P<body>[^)]*)\)", group, pattern.removeprefix("^").removesuffix("$"))
    if not re.fullmatch(pattern, text):
        raise ValueError(f"cannot fill the pattern {pattern!r} with {sorted(values)}")
    return text


def _fixed_width_file(contract: Contract, text: pa.Array, order: np.ndarray, header: str, trailer: str,
                      path: Path) -> None:
    newline = contract.line_end
    body = _join(text.take(pa.array(order)), np.zeros(len(order), np.int64), newline)
    path.write_bytes(_encoded((header + newline).encode("utf-8") + body + (trailer + newline).encode("utf-8"),
                              contract.encoding))


def write_fixed_width(contract: Contract, table: pa.Table, path: Path, raw_path: Path, records: int) -> None:
    """``contract`` is the sealed one; header and trailer are the raw file's (the reader checked
    that they hold only the period, the creation date and the count)."""
    raw = Path(raw_path).read_bytes().decode(contract.encoding).split(contract.line_end)
    header, trailer = raw[0], [line for line in raw if line][-1]
    blank = pa.array([" " * contract.file["record_length"]], pa.string())
    text = pa.concat_arrays([fixed_width_records(contract, table), blank]) if table.num_rows else blank
    order = np.full(records, len(text) - 1, dtype=np.int64)  # every data line blank, unless a record is on it
    order[table.column("_line").to_numpy() - 2] = np.arange(table.num_rows)  # data records start on line 2
    _fixed_width_file(contract, text, order, header, trailer, path)


def write_delivery(contract: Contract, table: pa.Table, path: Path, raw_path: Path | None, records: int,
                   typed_as_text: pa.Array | None = None) -> None:
    """Write ``table`` (text columns named as in the partner's file, plus ``_line``, in line
    order) to ``path`` in ``contract``'s format; ``records`` is how many data records the raw
    file (``raw_path``, for a fixed-width header and trailer) held."""
    if contract.format == "delimited":
        write_delimited(contract, table, path)
    elif contract.format == "jsonl":
        write_jsonl(contract, table, path)
    elif contract.format == "xlsx":
        write_xlsx(contract, table, path, typed_as_text)
    else:
        write_fixed_width(contract, table, path, raw_path, records)


def write_file(contract: Contract, table: pa.Table, folder: Path, period: str, created: str,
               typed_as_text: pa.Array | None = None) -> Path:
    """A whole delivery as the partner would send it, one record per row of ``table`` (text
    columns named as in the partner's file; typed ones for a spreadsheet): the file named by the
    contract for ``period`` (YYYY-MM) in ``folder``; ``created`` (YYYYMMDD) goes where the
    format records a creation date. Returns the file's path."""
    path = Path(folder) / contract.file["name"].format(period=period.replace("-", ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    first = 1 if contract.format == "jsonl" else 2  # the other formats start with a header line
    table = table.append_column("_line", pa.array(np.arange(table.num_rows) + first, pa.int64()))
    if contract.format != "fixed_width":
        write_delivery(contract, table, path, None, table.num_rows, typed_as_text)
    else:  # header and trailer made from the contract's patterns, not copied from a raw file
        spec = contract.file
        header = fill_pattern(spec["header"]["pattern"], period=period.replace("-", ""), created=created)
        trailer = fill_pattern(spec["trailer"]["pattern"], count=table.num_rows)
        _fixed_width_file(contract, fixed_width_records(contract, table), np.arange(table.num_rows), header,
                          trailer, path)
    return path
