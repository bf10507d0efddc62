"""XLSX workbooks (openpyxl): a named sheet, header in row 1, Excel or typed dates."""
from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

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


def read(contract: Contract, path: Path, period: str) -> ReadResult:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, TypeError):
        raise DeliveryRejected("the spreadsheet cannot be opened as an XLSX workbook") from None
    try:
        sheet_name = contract.file["sheet"]
        if sheet_name not in workbook.sheetnames:
            raise DeliveryRejected(f"the workbook has no sheet {sheet_name!r} "
                                   f"(it has: {', '.join(workbook.sheetnames)})")
        rows = workbook[sheet_name].iter_rows(values_only=True)
        header_row = next(rows, None)
        if header_row is None:
            raise DeliveryRejected(f"sheet {sheet_name!r} is empty")
        header = [str(h).strip() if h is not None else "" for h in header_row]
        check_columns(contract, header)
        position = {name: i for i, name in enumerate(header) if name}
        names = [c.name for c in contract.columns]
        columns: dict[str, list] = {n: [] for n in names}
        lines: list[int] = []
        for number, row in enumerate(rows, start=2):
            values = [_text(v) for v in row]
            if not any(values):
                continue  # an empty spreadsheet row is not a record
            lines.append(number)
            for n in names:
                i = position.get(n)
                columns[n].append(values[i] if i is not None and i < len(values) else None)
    finally:
        workbook.close()
    return ReadResult(text_table(columns, lines), [])
