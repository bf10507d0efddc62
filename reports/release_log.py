"""The release log: what was published when, from what, and how every number was shown.

``DATA/releases/<UTC time>_<file>.json`` — one record per published file: its sha256, the
knowledge base's key fingerprint and build time, the parameters, and for every published
cell whether it was shown exact, rounded or suppressed (and the text shown). Counts appear
only as released; no person-level value is ever written.

Differencing: a steering group that gets a new report every month could subtract two
releases. A cell that moves between released and suppressed while the count behind it
changed by fewer than ``threshold`` persons tells a reader that a handful of persons came
or went, so it is flagged — in the record and on the report's data-quality appendix.

That check needs the previous release's exact counts. They are kept in
``DATA/releases/restricted/<output>.json`` (directory 0700, file 0600), never published:
DATA is the controller's own storage, which already holds the knowledge base with every
exact count, so the sidecar adds no new exposure; it only keeps what the last release was
computed from, for this one comparison, and is replaced at each release.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from reports.disclosure import SUPPRESSED, Cell, Disclosure

RESTRICTED = "restricted"


@dataclass(frozen=True)
class Flag:
    cell: str
    previous: str   # status in the previous release
    now: str


def previous_release(releases: Path, output: str) -> dict | None:
    """The restricted sidecar of the last release of ``output``: its record name and exact cells."""
    path = Path(releases) / RESTRICTED / f"{output}.json"
    return json.loads(path.read_text()) if path.exists() else None


def differencing(previous: dict | None, cells: dict[str, Cell], threshold: int) -> list[Flag]:
    """Cells that moved between released and suppressed by a change of 1 … threshold−1 persons."""
    if not previous:
        return []
    flags = []
    for cell, now in sorted(cells.items()):
        before = previous["cells"].get(cell)
        if before is None or before["persons"] is None or now.persons is None:
            continue
        moved = (before["status"] == SUPPRESSED) != (now.status == SUPPRESSED)
        if moved and 0 < abs(now.persons - before["persons"]) < threshold:
            flags.append(Flag(cell, before["status"], now.status))
    return flags


def _write(path: Path, data: dict, mode: int) -> None:
    """Atomically, created with ``mode`` from the start (never briefly readable by others)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1, sort_keys=True)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def record(releases: Path, published: Path, file: Path, output: str, build_info: dict, parameters: dict,
           disclosure: Disclosure, flags: list[Flag], previous: dict | None) -> Path:
    """Write the release record of ``file`` (to be published as ``published``) and replace the
    restricted sidecar; returns the record's path."""
    releases = Path(releases)
    restricted = releases / RESTRICTED
    restricted.mkdir(parents=True, exist_ok=True)
    os.chmod(restricted, 0o700)
    now = dt.datetime.now(dt.timezone.utc)
    name = f"{now:%Y%m%dT%H%M%S%fZ}_{Path(published).stem}.json"
    cells = disclosure.cells
    counts = {s: sum(c.status == s for c in cells.values()) for s in ("exact", "rounded", "suppressed")}
    _write(releases / name, {
        "file": str(published), "sha256": hashlib.sha256(Path(file).read_bytes()).hexdigest(),
        "released_at": now.isoformat(timespec="seconds"), "output": output,
        "knowledge_base": {k: None if v is None else str(v) for k, v in build_info.items()},
        "parameters": parameters, "rules": disclosure.rules.as_dict(),
        "cells": {k: {"status": c.status, "released": c.released} for k, c in sorted(cells.items())},
        "cells_by_status": counts,
        "previous_release": previous["release"] if previous else None,
        "differencing_flags": [f.__dict__ for f in flags],
    }, 0o644)
    _write(restricted / f"{output}.json", {
        "release": name,
        "cells": {k: {"status": c.status, "persons": c.persons} for k, c in sorted(cells.items())},
    }, 0o600)
    return releases / name
