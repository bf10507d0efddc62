"""The landing zone: which deliveries are there, and has any of them changed?

``<landing>/<partner>/<YYYY-MM>/<file>``. Files are read-only inputs: this module
only lists and hashes them. A folder with several files, no file, or a file whose
name does not match its partner is a delivery to reject, not to guess at; anything
else found (stray files, unknown folders) is listed as ignored with its reason. Names
are partner-controlled text: they leave this module with identity codes redacted.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pipelines import timing
from pipelines.limits import THREADS
from pseudonymize.redact import redact, redact_count
from schemas.contract import Contract

PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
#: beside the file of a delivery pseudonymised by the partner (pipelines.partner_export)
MANIFEST = "manifest.json"


class LandingError(Exception):
    """The landing zone as a whole cannot be read (a one-line user error)."""


def shown(name: str) -> str:
    """A partner-chosen name as it may be printed: identity codes redacted, control characters
    (a newline in a folder name) made visible."""
    return redact(repr(name)[1:-1])


@dataclass(frozen=True)
class Ignored:
    """Something in the landing zone that is not a delivery: listed with the reason, never silent."""

    path: str                   # relative to the landing zone, as shown()
    reason: str
    codes_redacted: int = 0

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class Delivery:
    partner: str
    period: str                 # YYYY-MM
    folder: Path
    file: Path | None           # the one file, when there is exactly one
    content_sha256: str         # of the file, or of every file in the folder
    problem: str | None = None  # why the delivery must be rejected before reading
    names_redacted: int = 0     # identity codes found (and redacted) in file names
    manifest: Path | None = None  # a pre-pseudonymised delivery's manifest.json

    @property
    def file_name(self) -> str:
        """The file's name as it may be written anywhere (identity codes redacted)."""
        return shown(self.file.name) if self.file else ""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class HashCache:
    """Content hashes remembered by the file's stat: a national landing zone holds GBs, and
    only files written since the last scan need hashing again (as git does). ctime and inode
    are part of the key, so a copy that preserves mtime is still noticed. Paths are kept
    as hashes: a partner's file name is not written anywhere."""

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
        key = hashlib.sha256(str(file.resolve()).encode()).hexdigest()  # a name may hold a code
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


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _outside(path: Path, root: Path) -> bool:
    """A link that leads out of the landing zone (never followed: what it points at is not
    a partner's delivery). A link that cannot be resolved (one that loops) is not followed
    either; Python raises on it with the link's full path, a partner's name, in the message."""
    if not path.is_symlink():
        return False
    try:
        return not path.resolve().is_relative_to(root)
    except (RuntimeError, OSError):
        return True


def _names_redacted(paths) -> int:
    return sum(redact_count(p.name)[1] for p in paths)


def _inspect(contract: Contract, folder: Path, hashes: HashCache, root: Path) -> tuple[Delivery, list[Ignored]]:
    """The delivery of one period folder, and what in the folder is not part of it."""
    period = folder.name

    def rejected(problem: str, digest: str, names: int = 0) -> tuple[Delivery, list[Ignored]]:
        return Delivery(contract.partner, period, folder, None, digest, problem, names), []

    if _outside(folder, root):
        return rejected("the delivery folder is a link to outside the landing zone (not followed): "
                        "deliver the file itself into the folder", _digest("link", os.readlink(folder)))
    try:
        entries = sorted(folder.iterdir())
    except OSError as e:
        return rejected(f"the delivery folder cannot be read ({e.strerror}): check its permissions",
                        _digest("unreadable folder", str(e.errno)))
    ignored, files = [], []
    for p in entries:
        where = f"{contract.partner}/{period}/{shown(p.name)}"
        if p.name.startswith("."):
            ignored.append(Ignored(where, "hidden file or folder in a delivery folder; ignored",
                                   _names_redacted([p])))
        elif _outside(p, root):
            files.append(p)  # a link out of the landing zone: the delivery is rejected below
        elif p.is_file():
            files.append(p)
        else:
            ignored.append(Ignored(where, "not a regular file (a folder, a broken link or a device) in a "
                                          "delivery folder; ignored", _names_redacted([p])))
    manifest = next((p for p in files if p.name == MANIFEST and not _outside(p, root)), None)
    if manifest is not None:  # a delivery pseudonymised by the partner: the file and its manifest
        files.remove(manifest)
    names = _names_redacted(files)
    if len(files) != 1:
        h = hashlib.sha256()
        for p in files:
            h.update(p.name.encode() + b"\0" + _file_digest(p, hashes, root).encode())
        problem = ("the folder holds no file" if not files else
                   f"the folder holds {len(files)} files ({', '.join(shown(p.name) for p in files)}); "
                   "a delivery is exactly one file")
        return Delivery(contract.partner, period, folder, None, h.hexdigest(), problem, names), ignored
    file = files[0]
    shown_name = shown(file.name)
    match = contract.file_name_regex().fullmatch(file.name)
    problem = None
    expected = contract.file["name"].replace("{period}", period.replace("-", ""))
    if _outside(file, root):
        problem = f"file {shown_name!r} is a link to outside the landing zone (not followed): deliver the file itself"
    elif not match:
        problem = f"file name {shown_name!r} does not match {contract.partner}'s {contract.file['name']!r}"
    elif match["period"] != period.replace("-", ""):
        problem = f"file name {shown_name!r} is for another period than its folder: expected {expected!r}"
    digest = _file_digest(file, hashes, root)
    if problem is None and digest.startswith("unreadable:"):
        problem = f"file {shown_name!r} cannot be read ({digest.split(':', 2)[1]}): check its permissions"
    if manifest is not None:  # either changing is a new delivery
        digest = _digest(digest, _file_digest(manifest, hashes, root))
    return Delivery(contract.partner, period, folder, file, digest, problem, names, manifest), ignored


def inspect_folder(contract: Contract, folder: Path, root: Path) -> tuple[Delivery, list[Ignored]]:
    """The delivery in one period folder (also outside a landing zone: a partner's own export)."""
    return _inspect(contract, Path(folder), HashCache(None), Path(root).resolve())


def _file_digest(file: Path, hashes: HashCache, root: Path) -> str:
    """Content hash; for a link out of the landing zone or an unreadable file a stand-in that
    changes when the link or the file does (what a link points at is never read)."""
    if _outside(file, root):
        return _digest("link", os.readlink(file))
    try:
        return hashes.sha256(file)
    except OSError as e:
        try:
            st = file.stat()
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "no stat"
        return f"unreadable:{e.strerror}:{_digest(stamp)}"


def scan(landing: Path, contracts: dict[str, Contract], hash_cache: Path | None = None
         ) -> tuple[list[Delivery], list[Ignored]]:
    """Every delivery in the landing zone, and everything else in it, listed as ignored with
    the reason (stray files, unknown folders, folders that are not a period)."""
    with timing.stage("landing"):
        return _scan(landing, contracts, hash_cache)


def _scan(landing: Path, contracts: dict[str, Contract], hash_cache: Path | None) -> tuple[list[Delivery], list[Ignored]]:
    hashes = HashCache(hash_cache)
    landing = Path(landing)
    if not landing.is_dir():
        raise LandingError(f"landing zone {landing} is not a readable folder: "
                           "pass --landing DIR or set TYOKYKY_LANDING")
    root = landing.resolve()
    # in scan order: what is ignored, and the inspection of each period folder (hashing its file
    # releases the GIL, so the files of a national landing zone hash side by side)
    pending: list = []
    pool = ThreadPoolExecutor(max_workers=THREADS)
    try:
        for partner_dir in _listing(landing, landing, pending):
            name = shown(partner_dir.name)
            contract = contracts.get(partner_dir.name)
            outside = _outside(partner_dir, root)
            if outside or not partner_dir.is_dir():
                what = ("a link to outside the landing zone; not followed" if outside
                        else "a file at the landing zone's top level (deliveries go into "
                             "<partner>/<YYYY-MM>/); ignored")
                pending.append(Ignored(name, what, _names_redacted([partner_dir])))
                continue
            if contract is None:
                pending.append(Ignored(name, "folder in the landing zone is not a known partner; ignored",
                                       _names_redacted([partner_dir])))
                continue
            for folder in _listing(partner_dir, landing, pending):
                where = f"{name}/{shown(folder.name)}"
                if not folder.is_dir():
                    pending.append(Ignored(where, "a file at the partner's top level (deliveries go into "
                                                  "<partner>/<YYYY-MM>/); ignored", _names_redacted([folder])))
                elif not PERIOD.fullmatch(folder.name):
                    pending.append(Ignored(where, "not a YYYY-MM delivery folder; ignored", _names_redacted([folder])))
                else:
                    pending.append(pool.submit(_inspect, contract, folder, hashes, root))
        deliveries, ignored = [], []
        for item in pending:
            if isinstance(item, Ignored):
                ignored.append(item)
            else:
                delivery, extra = item.result()
                deliveries.append(delivery)
                ignored += extra
    finally:
        pool.shutdown(cancel_futures=True)
    hashes.save()
    return deliveries, ignored


def _listing(folder: Path, landing: Path, ignored: list[Ignored]) -> list[Path]:
    """A folder's entries; one that cannot be listed is named, not blamed on the whole zone."""
    try:
        return sorted(folder.iterdir())
    except OSError as e:
        ignored.append(Ignored(shown(str(folder.relative_to(landing))) or ".",
                               f"cannot be listed ({e.strerror}); check its permissions"))
        return []


def folder_bytes(landing: Path, partners, periods) -> int:
    """Bytes of the files in the given partners' period folders (a size estimate: stat only)."""
    total = 0
    for partner in partners:
        for period in periods:
            folder = Path(landing) / partner / period
            try:
                total += sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            except OSError:  # moved meanwhile: an estimate only, staging reports what it finds
                continue
    return total


def scan_partner(landing: Path, contract: Contract, period: str, hash_cache: Path | None = None
                 ) -> Delivery | None:
    folder = Path(landing) / contract.partner / period
    if not (folder.is_dir() or folder.is_symlink()):
        return None
    return _inspect(contract, folder, HashCache(hash_cache), Path(landing).resolve())[0]


def inventory(landing: Path, contracts: dict[str, Contract], hash_cache: Path | None = None) -> tuple | None:
    """``scan()`` for the knowledge-base build's report of the landing zone; None when the
    landing zone cannot be read now (the build itself needs only staging)."""
    try:
        return scan(landing, contracts, hash_cache)
    except (LandingError, OSError):
        return None
