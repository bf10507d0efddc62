"""JSON lines: one object per line; a line that is not an object is a row error.

A byte-order mark before the first line is not part of the first record (an editor's
habit, not a broken line); a line nested too deeply to parse is a row error like any
other line that is not an object, and so is an object naming a key twice."""
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


class _DuplicateKey(ValueError):
    pass


def _object(pairs: list) -> dict:
    """A JSON object; a key given twice is an error, not a silent choice of the last one."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKey
    return obj


def read(contract: Contract, path: Path, period: str) -> ReadResult:
    text = decode(path.read_bytes(), contract.encoding)
    if text.startswith("\ufeff"):
        text = text[1:]
    names = [c.name for c in contract.columns]
    columns: dict[str, list] = {n: [] for n in names}
    lines: list[int] = []
    errors: list[tuple[int, str]] = []
    loads = json.JSONDecoder(object_pairs_hook=_object).decode
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = loads(line)
        except _DuplicateKey:
            errors.append((number, "an object names the same key twice"))
            continue
        except ValueError:
            errors.append((number, "not valid JSON"))
            continue
        except RecursionError:
            errors.append((number, "not valid JSON (nested too deeply)"))
            continue
        if not isinstance(obj, dict):
            errors.append((number, "not a JSON object"))
            continue
        try:
            values = [_text(obj.get(n)) for n in names]
        except RecursionError:
            errors.append((number, "a value is nested too deeply"))
            continue
        lines.append(number)
        for n, v in zip(names, values):
            columns[n].append(v)
    return ReadResult(text_table(columns, lines), errors)
