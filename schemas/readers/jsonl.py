"""JSON lines: one object per line; a line that is not an object is a row error."""
from __future__ import annotations

import json
from pathlib import Path

from schemas.contract import Contract
from schemas.readers import ReadResult, decode, text_table


def _text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)  # nested values fail validation later, as they should


def read(contract: Contract, path: Path, period: str) -> ReadResult:
    text = decode(path.read_bytes(), contract.encoding)
    names = [c.name for c in contract.columns]
    columns: dict[str, list] = {n: [] for n in names}
    lines: list[int] = []
    errors: list[tuple[int, str]] = []
    loads = json.loads
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = loads(line)
        except ValueError:
            errors.append((number, "not valid JSON"))
            continue
        if not isinstance(obj, dict):
            errors.append((number, "not a JSON object"))
            continue
        lines.append(number)
        for n in names:
            columns[n].append(_text(obj.get(n)))
    return ReadResult(text_table(columns, lines), errors)
