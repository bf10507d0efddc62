"""Typed values → the text a partner's file holds, as its contract says (the inverse of casting).

The synthetic generator simulates typed values (dates, cents, codes as stored) and lets the
contract decide how a partner writes them: date format, zero-padded digits, decimal separator,
the partner's own code spellings. A value already given as text is the caller's choice (a
municipality code without its leading zeros, a sloppy identity code) and passes unchanged.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.contract import Column, Contract

NULL_TEXT = pa.scalar(None, pa.string())


def as_arrow(values) -> pa.Array:
    """NumPy or Python values as an Arrow array (NaT becomes null)."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    values = np.asarray(values)
    if values.dtype.kind == "M":
        return pa.array(values.astype("datetime64[D]"), pa.date32(), mask=np.isnat(values))
    if values.dtype.kind == "U":
        return pa.array(values.tolist(), pa.string())
    return pa.array(values)


def date_text(days: pa.Array, fmt: str) -> pa.Array:
    """Dates as ``fi`` (d.m.yyyy, no leading zeros) or ``iso`` (yyyy-mm-dd) text."""
    if fmt == "iso":
        return pc.strftime(days, format="%Y-%m-%d")
    text = pc.binary_join_element_wise(pc.cast(pc.day(days), pa.string()), pc.cast(pc.month(days), pa.string()),
                                       pc.cast(pc.year(days), pa.string()), ".")
    return pc.if_else(pc.is_null(days), NULL_TEXT, text)


def _padded(numbers: pa.Array, digits: int | None) -> pa.Array:
    text = pc.cast(numbers, pa.string())
    return pc.utf8_lpad(text, digits, padding="0") if digits else text


def _decimal(numbers: pa.Array, separator: str) -> pa.Array:
    text = pc.cast(pc.add(pc.cast(numbers, pa.float64()), 0.0), pa.string())  # + 0.0: no "-0"
    return text if separator == "." else pc.replace_substring(text, ".", ",")


def render_column(column: Column, values, date_format: str | None = None) -> pa.Array:
    """One column's values as the partner writes them; text passes unchanged. ``date_format``
    overrides the contract's first date format (a date typed by hand in a spreadsheet)."""
    values = as_arrow(values)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        if column.type == "code" and column.codes and any(k != v for k, v in column.codes.items()):
            spelled = pa.array(list(column.codes), pa.string())   # stored value → the partner's spelling
            where = pc.index_in(values, value_set=pa.array(list(column.codes.values()), pa.string()))
            return pc.coalesce(spelled.take(where), values)  # a value not in the list stays as given
        return values.cast(pa.string())
    if column.type == "date":
        return date_text(values, date_format or column.formats[0])
    if column.type == "month":
        return pc.strftime(values, format="%Y%m")
    if column.type in ("integer", "cents"):  # cents are given as whole cents
        return _padded(values, column.digits)
    if column.type == "decimal":
        return _decimal(values, column.decimal_separator)
    if column.type == "boolean":
        return pc.if_else(values, pa.scalar("true"), pa.scalar("false"))
    raise TypeError(f"{column.name}: give {column.type} values as text")


def render(contract: Contract, codes, values: Mapping[str, object], typed: bool = False) -> pa.Table:
    """The text table of a delivery: ``codes`` (identity codes, as text) and ``values`` keyed by
    each column's stored name (``as``); a column left out is empty. Columns are named as in the
    partner's file, in its order. ``typed`` keeps dates and numbers as they are (a spreadsheet's
    date and number cells); only text is rendered then."""
    unknown = set(values) - {c.target for c in contract.data_columns}
    if unknown:
        raise KeyError(f"{contract.partner}: no column is stored as {sorted(unknown)}")
    codes = as_arrow(codes)
    columns = {}
    for c in contract.columns:
        if c.type == "identity":
            columns[c.name] = codes
        elif c.target in values:
            value = as_arrow(values[c.target])
            columns[c.name] = value if typed and not pa.types.is_string(value.type) else render_column(c, value)
        else:
            columns[c.name] = pa.nulls(len(codes), pa.string())
    return pa.table(columns)
