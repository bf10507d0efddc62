"""Fixed-width records with a header and a record-count trailer (Kela).

The trailer is the partner's promise of completeness: a missing trailer or a count
that does not match rejects the whole file, since a truncated transfer would
otherwise load silently as a smaller month.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.contract import Contract
from schemas.readers import DeliveryRejected, ReadResult, decode, text_table


def read(contract: Contract, path: Path, period: str) -> ReadResult:
    spec = contract.file
    raw = path.read_bytes()  # binary: text mode would hide the CRLF record ends
    if not raw.strip():
        raise DeliveryRejected("the file is empty")
    end = spec.get("line_end", "\r\n")
    text = decode(raw, contract.encoding)
    if end == "\r\n" and "\r\n" not in text:
        raise DeliveryRejected("records do not end with CRLF as agreed: export the file again")
    lines = text.split(end)
    if lines and lines[-1] == "":
        lines.pop()
    header = re.match(spec["header"]["pattern"], lines[0]) if lines else None
    if not header:
        raise DeliveryRejected("the header record (ALKU + period + creation date) is missing or malformed")
    if "period" in header.groupdict() and header["period"] != period.replace("-", ""):
        raise DeliveryRejected(f"the header is for period {header['period']}, but the file lies in "
                               f"folder {period}: deliver it in the right folder")
    trailer = re.match(spec["trailer"]["pattern"], lines[-1]) if len(lines) > 1 else None
    if not trailer:
        raise DeliveryRejected("the trailer record (LOPPU + record count) is missing: "
                               "the file is incomplete, deliver it again")
    records = lines[1:-1]
    if int(trailer["count"]) != len(records):
        raise DeliveryRejected(f"the trailer counts {int(trailer['count'])} records but the file "
                               f"holds {len(records)}: the file is incomplete, deliver it again")
    arr = pa.array(records, pa.string())
    line_numbers = np.arange(2, 2 + len(records), dtype=np.int64)
    length = pc.utf8_length(arr).to_numpy(zero_copy_only=False)
    ok = length == spec["record_length"]
    errors = [(int(n), f"record is {int(l)} characters long, expected {spec['record_length']}")
              for n, l in zip(line_numbers[~ok], length[~ok])]
    if not ok.all():
        arr = arr.filter(pa.array(ok))
    columns = {c.name: pc.utf8_slice_codeunits(arr, c.start - 1, c.end) for c in contract.columns}
    columns = {k: pc.if_else(pc.equal(pc.utf8_trim_whitespace(v), ""), pa.scalar(None, pa.string()), v)
               for k, v in columns.items()}
    return ReadResult(text_table(columns, line_numbers[ok]), errors)
