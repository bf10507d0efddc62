"""One landing zone holding several regions' deliveries: per partner and period, one file with the
records of every region (the partners' formats kept: one header, the Kela trailer's count summed,
one workbook sheet). The exactness test builds it once and compares with the pooled regions.
"""
from __future__ import annotations

from pathlib import Path


def _merge_lines(files: list[Path]) -> bytes:
    """The first file's header line, then every file's records."""
    first = files[0].read_bytes()
    head, _, body = first.partition(b"\n")
    parts = [head + b"\n", body]
    for f in files[1:]:
        parts.append(f.read_bytes().partition(b"\n")[2])
    return b"".join(parts)


def _merge_kela(files: list[Path]) -> bytes:
    """ALKU of the first file, every file's records, LOPPU with the total count."""
    heads, records = [], []
    for f in files:
        lines = f.read_bytes().split(b"\r\n")
        lines = [x for x in lines if x]
        heads.append(lines[0])
        records += lines[1:-1]
    return b"\r\n".join([heads[0], *records, b"LOPPU%09d" % len(records)]) + b"\r\n"


def _merge_workbooks(files: list[Path], out: Path) -> None:
    import openpyxl

    merged = openpyxl.Workbook()
    sheet = merged.active
    for i, f in enumerate(files):
        wb = openpyxl.load_workbook(f)
        ws = wb.worksheets[0]
        sheet.title = ws.title
        for j, row in enumerate(ws.iter_rows(values_only=True)):
            if j == 0 and i > 0:
                continue
            sheet.append(list(row))
    merged.save(out)


def write_union(landings: list[Path], out: Path) -> None:
    groups: dict[Path, list[Path]] = {}
    for root in landings:
        for f in sorted(Path(root).rglob("*")):
            if f.is_file():
                groups.setdefault(f.relative_to(root), []).append(f)
    for rel, files in sorted(groups.items()):
        target = Path(out) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix == ".xlsx":
            _merge_workbooks(files, target)
        elif rel.parts[0] == "kela":
            target.write_bytes(_merge_kela(files))
        elif target.suffix == ".jsonl":  # no header: every file's records
            target.write_bytes(b"".join(f.read_bytes() for f in files))
        else:
            target.write_bytes(_merge_lines(files))
