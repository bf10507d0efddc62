"""XLSX workbooks (openpyxl): a named sheet, header in row 1, Excel or typed dates.

Every failure inside openpyxl (a truncated file, a bad shared-string index, a cell typed
as a number or date that holds text, …) rejects the delivery with the row and column
where it happened: openpyxl's own message can quote the cell, which may be an identity
code, so it is never passed on.

Formula cells are read as the value Excel computed and saved with them; a formula saved
without its value (a workbook written by a program, never opened in Excel) is a row
error, not an empty cell.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from openpyxl.utils import get_column_letter

from pseudonymize.redact import redact
from schemas.contract import Contract
from schemas.readers import DeliveryRejected, ReadResult, check_columns, text_table


def _text(value) -> str | None:
    """Cell value as text: Excel dates become ISO dates, typed text stays as typed."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def _failed_cell(error: BaseException) -> str | None:
    """The coordinate (``B7``) of the cell openpyxl was parsing when it failed, if known."""
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "parse_cell":
            coordinate = tb.tb_frame.f_locals.get("coordinate")
            return coordinate if isinstance(coordinate, str) and coordinate.isalnum() else None
        tb = tb.tb_next
    return None


def _open(path: Path, data_only: bool):
    import openpyxl

    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=data_only)
    except Exception:  # openpyxl, zipfile, XML parser: the message may quote content
        raise DeliveryRejected("the spreadsheet cannot be opened as an XLSX workbook") from None


def _rows(path: Path, sheet_name: str, data_only: bool):
    """(row number, values) of the sheet; a parsing failure names the row and column only.
    Without ``data_only`` a formula cell reads as its formula text (``=…``)."""
    workbook = _open(path, data_only)
    row = 0
    try:
        if sheet_name not in workbook.sheetnames:
            shown = ", ".join(redact(repr(s)[1:-1]) for s in workbook.sheetnames)
            raise DeliveryRejected(f"the workbook has no sheet {sheet_name!r} (it has: {shown})")
        for row, values in enumerate(workbook[sheet_name].iter_rows(values_only=True), start=1):
            yield row, values
    except DeliveryRejected:
        raise
    except Exception as e:  # never str(e): it can carry the cell's text
        cell = _failed_cell(e)
        where = f"cell {cell}" if cell else f"row {row + 1}"
        raise DeliveryRejected(f"sheet {sheet_name!r} cannot be read at {where} ({type(e).__name__}): the file "
                               "is damaged or a cell's type does not match its content (e.g. text in a "
                               "cell formatted as a date or number); fix it and export again") from None
    finally:
        workbook.close()


def _saved_values(path: Path, sheet_name: str, rows: set[int]) -> dict[int, tuple]:
    """The values Excel saved in the given rows: for a formula its computed value (None if
    none was saved), for text that merely starts with "=" the text itself (a second pass)."""
    return {number: values for number, values in _rows(path, sheet_name, data_only=True) if number in rows}


def read(contract: Contract, path: Path, period: str) -> ReadResult:
    sheet_name = contract.file["sheet"]
    rows = _rows(path, sheet_name, data_only=False)
    first = next(rows, None)
    if first is None:
        raise DeliveryRejected(f"sheet {sheet_name!r} is empty")
    header = [_text(v) or "" for v in first[1]]
    check_columns(contract, header)
    named = [h for h in header if h]
    if len(set(named)) != len(named):
        twice = sorted({h for h in named if named.count(h) > 1})
        raise DeliveryRejected(f"the header names column(s) {', '.join(redact(repr(h)) for h in twice)} "
                               "more than once: which one holds the data cannot be known")
    position = {name: i for i, name in enumerate(header) if name}
    names = [c.name for c in contract.columns]
    raw = [(number, list(values)) for number, values in rows]
    formulas = {number: [i for i, v in enumerate(values) if isinstance(v, str) and v.startswith("=")]
                for number, values in raw}
    formulas = {number: cells for number, cells in formulas.items() if cells}
    saved = _saved_values(path, sheet_name, set(formulas)) if formulas else {}

    columns: dict[str, list] = {n: [] for n in names}
    lines: list[int] = []
    errors: list[tuple[int, str]] = []
    for number, values in raw:
        missing = []
        for i in formulas.get(number, ()):
            values[i] = saved[number][i] if i < len(saved.get(number, ())) else None
            if values[i] is None:
                missing.append(header[i] if i < len(header) and header[i] else get_column_letter(i + 1))
        texts = [_text(v) for v in values]
        if missing:
            errors.append((number, f"{', '.join(redact(m) for m in missing)}: a formula saved without its "
                                   "computed value (open and save the workbook in Excel)"))
            continue
        if not any(texts):
            continue  # an empty spreadsheet row is not a record
        lines.append(number)
        for n in names:
            i = position.get(n)
            columns[n].append(texts[i] if i is not None and i < len(texts) else None)
    return ReadResult(text_table(columns, lines), errors)
