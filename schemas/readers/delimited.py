"""Delimited text (CSV-like): BOM, encodings, optional quoting, header row."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from schemas.contract import Contract
from schemas.readers import DeliveryRejected, ReadResult, check_columns, decode, text_table


def _parse(data: bytes, header: list[str], spec: dict, threads: bool) -> tuple[pa.Table, list[tuple]]:
    """Parse with pyarrow; malformed rows are collected as (line, expected, actual) fields."""
    bad_rows: list[tuple[int | None, int, int]] = []

    def on_invalid(row) -> str:  # row.text is never kept: it may hold an identity code
        bad_rows.append((row.number, row.expected_columns, row.actual_columns))
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(use_threads=threads, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(
                delimiter=spec["delimiter"],
                quote_char='"' if spec.get("quoting") else False,
                double_quote=True, newlines_in_values=bool(spec.get("quoting")), ignore_empty_lines=False,
                invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in header}, strings_can_be_null=True,
                quoted_strings_can_be_null=True, null_values=[""]),
        )
    except (pa.ArrowInvalid, pa.ArrowException):  # message may quote content: replace it
        raise DeliveryRejected("the file cannot be parsed as delimited text with the agreed "
                               f"delimiter {spec['delimiter']!r}") from None
    return table, bad_rows


def _record_starts(text: str, spec: dict, records: int) -> np.ndarray:
    """1-based physical line where each record (header first) starts. One record per line
    unless a quoted value holds a line break; then Python's csv module, which counts the
    lines it reads, tells where each record starts."""
    physical = text.count("\n") + (0 if text.endswith("\n") else 1)
    if physical == records and text.count("\r") == text.count("\r\n"):
        return np.arange(1, records + 1, dtype=np.int64)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=spec["delimiter"], quotechar='"',
                        quoting=csv.QUOTE_MINIMAL if spec.get("quoting") else csv.QUOTE_NONE)
    starts, consumed = [], 0
    try:
        for _ in reader:
            starts.append(consumed + 1)
            consumed = reader.line_num
    except csv.Error:  # the message quotes no content, but the file is not what was agreed
        raise DeliveryRejected("the file cannot be parsed as delimited text: a quoted value is not "
                               "closed") from None
    if len(starts) != records:
        raise DeliveryRejected("the line of every record cannot be told apart (line breaks inside "
                               "values): export the file again without them")
    return np.array(starts, dtype=np.int64)


def read(contract: Contract, path: Path, period: str) -> ReadResult:
    spec = contract.file
    raw = path.read_bytes()
    text = decode(raw, contract.encoding)
    if text.startswith("\ufeff"):
        text = text[1:]  # BOM: the spec says utf-8 files carry one; one missing is tolerated
    if not text or text.isspace():  # (text.strip() would copy a national file to find out)
        raise DeliveryRejected("the file is empty")
    # pyarrow parses UTF-8: a UTF-8 file is passed as is (less its BOM), others transcoded
    utf8 = contract.encoding.replace("_", "-").lower() in ("utf-8", "utf8")
    data = (raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw) if utf8 else text.encode("utf-8")
    end = text.find("\n")
    first_line = (text if end < 0 else text[:end]).rstrip("\r")   # (split would copy the rest of the file)
    header = [h.strip().strip('"') if spec.get("quoting") else h.strip()
              for h in first_line.split(spec["delimiter"])]
    check_columns(contract, header)
    if len(set(header)) != len(header):
        raise DeliveryRejected("the header names a column twice")

    table, bad_rows = _parse(data, header, spec, threads=True)
    if any(n is None for n, _, _ in bad_rows):  # threaded parsing may not know a bad row's line
        table, bad_rows = _parse(data, header, spec, threads=False)

    # Physical line where every record starts (a quoted value may span lines).
    starts = _record_starts(text, spec, 1 + table.num_rows + len(bad_rows))
    parsed = np.ones(len(starts) - 1, dtype=bool)
    parsed[[n - 2 for n, _, _ in bad_rows]] = False  # row numbers count the header as 1
    lines = starts[1:][parsed]
    ends = np.append(starts[1:] - 1, text.count("\n") + (0 if text.endswith("\n") else 1))
    errors = [(int(starts[n - 1]), f"expected {exp} fields, found {act}" + (
        f" (a quoted value runs over lines {starts[n - 1]}–{ends[n - 1]}: check its quotes)"
        if ends[n - 1] > starts[n - 1] else "")) for n, exp, act in bad_rows]
    # All-null rows: a blank line is not a record; a line of delimiters only is a row error.
    keep = None
    for col in table.columns:
        valid = pc.is_valid(col)
        keep = valid if keep is None else pc.or_(keep, valid)
    if keep is not None and not pc.all(keep).as_py():
        mask = keep.to_numpy(zero_copy_only=False)
        physical = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        errors += [(int(n), "every field is empty (a line of delimiters only)")
                   for n in lines[~mask] if physical[n - 1].strip()]
        table, lines = table.filter(keep), lines[mask]
    wanted = {c.name: table.column(c.name) if c.name in header else pa.nulls(table.num_rows, pa.string())
              for c in contract.columns}
    wanted = {k: v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v for k, v in wanted.items()}
    return ReadResult(text_table(wanted, lines), sorted(errors))
