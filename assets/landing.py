"""The landing zone: which deliveries are there, and has any of them changed?

``<landing>/<partner>/<YYYY-MM>/<file>``. Files are read-only inputs: this module
only lists and hashes them. A folder with several files, no file, or a file whose
name does not match its partner is a delivery to reject, not to guess at.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from schemas.contract import Contract

PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class LandingError(Exception):
    """The landing zone as a whole cannot be read (a one-line user error)."""


@dataclass(frozen=True)
class Delivery:
    partner: str
    period: str                 # YYYY-MM
    folder: Path
    file: Path | None           # the one file, when there is exactly one
    content_sha256: str         # of the file, or of every file in the folder
    problem: str | None = None  # why the delivery must be rejected before reading

    @property
    def file_name(self) -> str:
        return self.file.name if self.file else ""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class HashCache:
    """Content hashes remembered by the file's stat: a national landing zone holds GBs, and
    only files written since the last scan need hashing again (as git does). ctime and inode
    are part of the key, so a copy that preserves mtime is still noticed."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else None
        self.entries: dict[str, list] = {}
        if self.path and self.path.exists():
            try:
                self.entries = json.loads(self.path.read_text())
            except ValueError:
                self.entries = {}

    def sha256(self, file: Path) -> str:
        st = file.stat()
        key = str(file.resolve())
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        hit = self.entries.get(key)
        if hit and hit[:4] == stamp:
            return hit[4]
        digest = file_sha256(file)
        self.entries[key] = stamp + [digest]
        return digest

    def save(self) -> None:
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.entries))
            os.replace(tmp, self.path)


def _inspect(contract: Contract, folder: Path, hashes: HashCache) -> Delivery:
    period = folder.name
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if len(files) != 1:
        h = hashlib.sha256()
        for p in files:
            h.update(p.name.encode() + b"\0" + hashes.sha256(p).encode())
        problem = ("the folder holds no file" if not files else
                   f"the folder holds {len(files)} files ({', '.join(p.name for p in files)}); "
                   "a delivery is exactly one file")
        return Delivery(contract.partner, period, folder, None, h.hexdigest(), problem)
    file = files[0]
    match = contract.file_name_regex().match(file.name)
    problem = None
    expected = contract.file["name"].replace("{period}", period.replace("-", ""))
    if not match:
        problem = f"file name {file.name!r} does not match {contract.partner}'s {contract.file['name']!r}"
    elif match["period"] != period.replace("-", ""):
        problem = f"file name {file.name!r} is for another period than its folder: expected {expected!r}"
    return Delivery(contract.partner, period, folder, file, hashes.sha256(file), problem)


def scan(landing: Path, contracts: dict[str, Contract], hash_cache: Path | None = None
         ) -> tuple[list[Delivery], list[str]]:
    """Every delivery in the landing zone, and warnings about what is not a delivery."""
    hashes = HashCache(hash_cache)
    landing = Path(landing)
    if not landing.is_dir():
        raise LandingError(f"landing zone {landing} is not a readable folder: "
                           "pass --landing DIR or set TYOKYKY_LANDING")
    deliveries, warnings = [], []
    for partner_dir in sorted(p for p in landing.iterdir() if p.is_dir()):
        contract = contracts.get(partner_dir.name)
        if contract is None:
            warnings.append(f"folder {partner_dir.name!r} in the landing zone is not a known partner; ignored")
            continue
        for folder in sorted(p for p in partner_dir.iterdir() if p.is_dir()):
            if not PERIOD.match(folder.name):
                warnings.append(f"{partner_dir.name}/{folder.name}: not a YYYY-MM delivery folder; ignored")
                continue
            deliveries.append(_inspect(contract, folder, hashes))
    hashes.save()
    return deliveries, warnings


def scan_partner(landing: Path, contract: Contract, period: str, hash_cache: Path | None = None
                 ) -> Delivery | None:
    folder = Path(landing) / contract.partner / period
    return _inspect(contract, folder, HashCache(hash_cache)) if folder.is_dir() else None
