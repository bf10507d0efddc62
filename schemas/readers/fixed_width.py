"""Fixed-width records with a header and a record-count trailer (Kela).

The trailer is the partner's promise of completeness: a missing trailer or a count
that does not match rejects the whole file, since a truncated transfer would
otherwise load silently as a smaller month.
"""
from __future__ import annotations

import codecs
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from schemas.contract import Contract
from schemas.readers import BLOCK_ROWS, DeliveryRejected, ReadResult, decode, text_table


def _lines(raw: bytes, encoding: str) -> pa.Array:
    """Every line as Arrow text, split by pyarrow (no Python string per record: a national
    month is millions of lines). A unit-separator delimiter that records never contain
    makes the CSV parser a line splitter; CR of CRLF is dropped with the line end."""
    table = pacsv.read_csv(
        pa.BufferReader(raw),
        read_options=pacsv.ReadOptions(column_names=["line"], encoding=encoding, use_threads=True,
                                       block_size=1 << 24),
        parse_options=pacsv.ParseOptions(delimiter="\x1f", quote_char=False, escape_char=False,
                                         newlines_in_values=False, ignore_empty_lines=False,
                                         invalid_row_handler=lambda row: "error"),
        convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()}, strings_can_be_null=False,
                                             quoted_strings_can_be_null=False))
    return table.column("line").combine_chunks()


def read(contract: Contract, path: Path, period: str) -> ReadResult:
    spec = contract.file
    raw = path.read_bytes()  # binary: text mode would hide the CRLF record ends
    if not raw or raw.isspace():  # (raw.strip() would copy a national file to find out)
        raise DeliveryRejected("the file is empty")
    if not _every_byte_decodes(contract.encoding):
        decode(raw, contract.encoding)  # undecodable bytes reject the file
    if contract.line_end == "\r\n" and raw.count(b"\n") != raw.count(b"\r\n"):
        raise DeliveryRejected("records do not end with CRLF as agreed: export the file again")
    try:
        lines = _lines(raw, contract.encoding)
    except (pa.ArrowInvalid, pa.ArrowException):  # a record holding the separator byte
        raise DeliveryRejected("the file holds control characters that are not allowed in records") from None
    del raw
    header = re.match(spec["header"]["pattern"], lines[0].as_py()) if len(lines) else None
    if not header:
        raise DeliveryRejected("the header record (ALKU + period + creation date) is missing or malformed")
    if "period" in header.groupdict() and header["period"] != period.replace("-", ""):
        raise DeliveryRejected(f"the header is for period {header['period']}, but the file lies in "
                               f"folder {period}: deliver it in the right folder")
    trailer = re.match(spec["trailer"]["pattern"], lines[len(lines) - 1].as_py()) if len(lines) > 1 else None
    if not trailer:
        raise DeliveryRejected("the trailer record (LOPPU + record count) is missing: "
                               "the file is incomplete, deliver it again")
    records = lines.slice(1, len(lines) - 2)
    if int(trailer["count"]) != len(records):
        raise DeliveryRejected(f"the trailer counts {int(trailer['count'])} records but the file "
                               f"holds {len(records)}: the file is incomplete, deliver it again")
    line_numbers = np.arange(2, 2 + len(records), dtype=np.int64)
    length = pc.utf8_length(records).to_numpy(zero_copy_only=False)
    ok = length == spec["record_length"]
    errors = [(int(n), f"record is {int(l)} characters long, expected {spec['record_length']}")
              for n, l in zip(line_numbers[~ok], length[~ok])]
    if not ok.all():
        records = records.filter(pa.array(ok))
    del lines
    # one field of one block of records at a time, each block in buffers of its own: staging
    # frees a block as soon as it is checked, so a national month is never held whole twice
    columns: dict[str, list] = {c.name: [] for c in contract.columns}
    for start in range(0, len(records), BLOCK_ROWS):
        block = records.slice(start, BLOCK_ROWS)
        field = _ascii_field if pc.all(pc.ascii_is_printable(block)).as_py() else _text_field
        for c in contract.columns:
            columns[c.name].append(field(block, c.start - 1, c.end))
    del records
    return ReadResult(text_table({k: pa.chunked_array(v, pa.string()) for k, v in columns.items()},
                                 line_numbers[ok]), errors)


def _text_field(block: pa.Array, start: int, end: int) -> pa.Array:
    """Characters ``start:end`` of each record; NULL where they are blank (Unicode whitespace)."""
    field = pc.utf8_slice_codeunits(block, start, end)
    return pc.if_else(pc.equal(pc.utf8_trim_whitespace(field), ""), pa.scalar(None, pa.string()), field)


def _ascii_field(block: pa.Array, start: int, end: int) -> pa.Array:
    """The same for records of printable ASCII only (what Kela sends), seven times faster: a
    character is a byte, so the field is a byte slice, and the only blank character is the
    space (a tab or other control character would take the block to :func:`_text_field`).
    The slice's text is kept as is; blanks are marked NULL in its validity bitmap."""
    field = pc.binary_slice(block.view(pa.binary()), start, end).view(pa.string())
    present = pc.invert(pc.ascii_is_space(field))   # never empty: the contract keeps fields in the record
    return pa.Array.from_buffers(pa.string(), len(field), [present.buffers()[1], *field.buffers()[1:]])


def _every_byte_decodes(encoding: str) -> bool:
    """ISO-8859-1 maps every byte to a character: checking a national file would only copy it."""
    return codecs.lookup(encoding).name == "iso8859-1"
