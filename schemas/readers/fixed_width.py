"""Fixed-width records with a header and a record-count trailer (Kela).

The trailer is the partner's promise of completeness: a missing trailer or a count
that does not match rejects the whole file, since a truncated transfer would
otherwise load silently as a smaller month.

A national month is millions of records, so the file is read twice and never held
whole: a first pass over line-aligned chunks finds everything that rejects the file
(encoding, line ends, header, trailer, the count), and only then are the records
handed on a block at a time, each block cut into fields and dropped by staging once
checked. A file the first pass rejects has never had a row pseudonymised.
"""
from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from schemas.contract import Contract
from schemas.readers import BLOCK_ROWS, DeliveryRejected, ReadResult, decode, text_table

#: bytes the first pass reads at a time (line-aligned)
SURVEY_BYTES = 1 << 26
_SEPARATOR = b"\x1f"   # the byte that makes pyarrow's CSV parser a line splitter (records never hold it)
_FIRST_LINE = re.compile(rb"[^\r\n]*(\r\n|\r|\n)?")
CHANGED = "the file changed while it was read: deliver it again"
BOM = "\ufeff"   # pyarrow drops it at the start of what it reads, as a file's byte-order mark


def _lines(raw: bytes, encoding: str) -> pa.Array:
    """Every line as Arrow text, split by pyarrow (no Python string per record: a national
    month is millions of lines). A unit-separator delimiter that records never contain
    makes the CSV parser a line splitter; CR of CRLF is dropped with the line end.
    A line ends at CR, LF or CRLF, as :func:`_survey` counts them."""
    table = pacsv.read_csv(
        pa.BufferReader(raw),
        read_options=pacsv.ReadOptions(column_names=["line"], encoding=encoding, use_threads=True,
                                       block_size=1 << 24),
        parse_options=pacsv.ParseOptions(delimiter=_SEPARATOR.decode(), quote_char=False, escape_char=False,
                                         newlines_in_values=False, ignore_empty_lines=False,
                                         invalid_row_handler=lambda row: "error"),
        convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()}, strings_can_be_null=False,
                                             quoted_strings_can_be_null=False))
    return table.column("line").combine_chunks()


def _aligned(f: BinaryIO, size: int) -> Iterator[bytes]:
    """The rest of ``f`` in chunks of about ``size`` bytes, each ending just after an LF (but
    the last): no line, and no CRLF, is ever cut in two. A line longer than ``size`` is
    gathered in parts and joined once."""
    pending: list[bytes] = []   # read since the last LF (holds none)
    while data := f.read(size):
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            pending.append(data)
            continue
        pending.append(data[:cut] if cut < len(data) else data)
        yield b"".join(pending) if len(pending) > 1 else pending[0]
        pending = [data[cut:]] if cut < len(data) else []
    if pending:
        yield b"".join(pending)


@dataclass
class _Survey:
    lines: int           # as pyarrow splits them (CR, LF, CRLF)
    first: bytes         # the first line, and the bytes it takes with its line end
    first_bytes: int
    last: bytes          # the last line
    identity: tuple      # the file surveyed: the second pass reads it only while it is the same


def _identity(f: BinaryIO) -> tuple:
    """Which file, of what size, last written when: a file replaced or written to between the
    passes (a transfer still going on) differs in one of them."""
    st = os.fstat(f.fileno())
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _survey(contract: Contract, path: Path) -> _Survey:
    """One pass over the file for everything that rejects it whole, in the order the checks
    have always run: empty, undecodable, line ends, a separator byte, then what the caller
    checks (header, trailer, count)."""
    encoding, check_decoding = contract.encoding, not _every_byte_decodes(contract.encoding)
    blank, undecodable, separator = True, None, False
    lf = crlf = cr = 0
    first = last = None
    first_bytes = 0
    with open(path, "rb") as f:
        identity = _identity(f)
        for chunk in _aligned(f, SURVEY_BYTES):
            if first is None:
                m = _FIRST_LINE.match(chunk)
                first, first_bytes = m.group(0).rstrip(b"\r\n"), m.end()
            last = chunk  # no line spans two chunks
            blank = blank and chunk.isspace()
            if check_decoding and undecodable is None:
                try:
                    decode(chunk, encoding, first_line=lf + 1)
                except DeliveryRejected as e:
                    undecodable = e
            separator = separator or _SEPARATOR in chunk
            lf, crlf, cr = lf + chunk.count(b"\n"), crlf + chunk.count(b"\r\n"), cr + chunk.count(b"\r")
        changed = _identity(f) != identity or f.tell() != identity[2]
    if changed:
        raise DeliveryRejected(CHANGED)
    if first is None or blank:
        raise DeliveryRejected("the file is empty")
    if undecodable is not None:
        raise undecodable
    if contract.line_end == "\r\n" and lf != crlf:
        raise DeliveryRejected("records do not end with CRLF as agreed: export the file again")
    if separator:
        raise DeliveryRejected("the file holds control characters that are not allowed in records")
    return _Survey(lf + cr - crlf + (last[-1:] not in (b"\r", b"\n")), first, first_bytes, _last_line(last), identity)


def _last_line(chunk: bytes) -> bytes:
    """The last line of a chunk, as pyarrow splits it (a final line end ends it, adds none)."""
    end = len(chunk) - (2 if chunk.endswith(b"\r\n") else 1 if chunk[-1:] in (b"\r", b"\n") else 0)
    return chunk[max(chunk.rfind(b"\r", 0, end), chunk.rfind(b"\n", 0, end)) + 1:end]


def read(contract: Contract, path: Path, period: str) -> ReadResult:
    spec = contract.file
    survey = _survey(contract, path)  # binary: text mode would hide the CRLF record ends
    header = re.match(spec["header"]["pattern"], survey.first.decode(contract.encoding).removeprefix(BOM))
    if not header:
        raise DeliveryRejected("the header record (ALKU + period + creation date) is missing or malformed")
    if "period" in header.groupdict() and header["period"] != period.replace("-", ""):
        raise DeliveryRejected(f"the header is for period {header['period']}, but the file lies in "
                               f"folder {period}: deliver it in the right folder")
    trailer = re.match(spec["trailer"]["pattern"], survey.last.decode(contract.encoding)) if survey.lines > 1 else None
    if not trailer:
        raise DeliveryRejected("the trailer record (LOPPU + record count) is missing: "
                               "the file is incomplete, deliver it again")
    records = survey.lines - 2
    if int(trailer["count"]) != records:
        raise DeliveryRejected(f"the trailer counts {int(trailer['count'])} records but the file "
                               f"holds {records}: the file is incomplete, deliver it again")
    errors: list[tuple[int, str]] = []
    return ReadResult(_blocks(contract, path, survey, records, errors), errors, records=records)


def _blocks(contract: Contract, path: Path, survey: _Survey, records: int, errors: list) -> Iterator[pa.Table]:
    """The records after the header, about a block of rows at a time, cut into fields; a record
    of the wrong length goes to ``errors`` as it is met. Read only from the file surveyed: one
    replaced or written to since (or while it is read) rejects the delivery."""
    size = BLOCK_ROWS * (contract.file["record_length"] + len(contract.line_end))
    line, left = 2, records
    try:
        with open(path, "rb") as f:
            if _identity(f) != survey.identity:
                raise DeliveryRejected(CHANGED)
            f.seek(survey.first_bytes)
            for chunk in _aligned(f, size):
                if not left:
                    break
                bom = _starts_with_bom(chunk, contract.encoding)
                if bom:  # pyarrow drops a byte-order mark at the start of what it reads: after an
                    chunk = b"\n" + chunk  # empty line first, it stays the record's (as in one read)
                try:
                    lines = _lines(chunk, contract.encoding)
                except (pa.ArrowInvalid, pa.ArrowException):
                    raise DeliveryRejected(CHANGED) from None
                block = lines.slice(int(bom))
                block = block.slice(0, min(left, len(block)))
                del chunk, lines
                left -= len(block)
                yield _fields(contract, block, line, errors)
                line += len(block)
            if left or _identity(f) != survey.identity:
                raise DeliveryRejected(CHANGED)
    except OSError as e:
        raise DeliveryRejected(f"the file cannot be read ({e.strerror}): check that it is in place "
                               "and readable") from None
    if records == 0:
        yield text_table({c.name: pa.array([], pa.string()) for c in contract.columns}, [])


def _starts_with_bom(chunk: bytes, encoding: str) -> bool:
    """Whether a chunk's text begins with a byte-order mark, which pyarrow drops at the start of
    what it reads (only in a file of an encoding that can hold one: never in ISO-8859-1)."""
    return codecs.getincrementaldecoder(encoding)(errors="ignore").decode(chunk[:8]).startswith(BOM)


def _fields(contract: Contract, block: pa.Array, first_line: int, errors: list) -> pa.Table:
    """One block of records as a table of text fields, each in buffers of its own."""
    length = contract.file["record_length"]
    line_numbers = np.arange(first_line, first_line + len(block), dtype=np.int64)
    lengths = pc.utf8_length(block).to_numpy(zero_copy_only=False)
    ok = lengths == length
    if not ok.all():
        errors.extend((int(n), f"record is {int(n_chars)} characters long, expected {length}")
                      for n, n_chars in zip(line_numbers[~ok], lengths[~ok]))
        block = block.filter(pa.array(ok))
    field = _ascii_field if pc.all(pc.ascii_is_printable(block)).as_py() else _text_field
    return text_table({c.name: field(block, c.start - 1, c.end) for c in contract.columns}, line_numbers[ok])
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
