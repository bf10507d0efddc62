"""Regions: which deployment a data directory belongs to, from a region file (YAML).

A region file names the region (``name``, short, used as the ``region`` column of the national
pool), its ``title`` for reports, the ``controller`` (the wellbeing services county that holds
the person-level data), its member ``municipalities`` by official code, and optionally its
``landing``, ``data`` and ``key_file`` (relative paths are relative to the region file). Each
region has its own key, so pseudonyms of one region cannot be joined to another's.

``tyokyky run --region FILE`` binds the data directory to the region (``DATA/region.json``):
later builds of that directory — the command line, the sensor, the schedule — know the region
without the flag, and a build of another region into the same directory is refused. The
knowledge-base build writes the binding into ``kb.region`` and ``kb.municipalities``.
Without a region the deployment is one unnamed region, as before.
"""
from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).parent
MUNICIPALITIES_CSV = HERE / "municipalities.csv"
BINDING = "region.json"
NATIONAL = "national"  # the region column's value of the pooled totals: no region may take it
NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
FIELDS = {"name", "title", "controller", "municipalities", "landing", "data", "key_file"}


class RegionError(Exception):
    """A region file or binding that cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class Municipality:
    code: str
    name_fi: str
    name_sv: str | None

    @property
    def label(self) -> str:
        return f"{self.name_fi} ({self.name_sv})" if self.name_sv else self.name_fi


def municipalities() -> dict[str, Municipality]:
    """Official municipality codes (Statistics Finland) with Finnish, and where official Swedish, names."""
    with MUNICIPALITIES_CSV.open(encoding="utf-8", newline="") as f:
        return {r["code"]: Municipality(r["code"], r["name_fi"], r["name_sv"] or None) for r in csv.DictReader(f)}


def normalise_code(value) -> str | None:
    """'91', 91 or '091' → '091'; anything that is not a code of 1–3 digits → None."""
    text = str(value).strip()
    return text.zfill(3) if isinstance(value, (int, str)) and not isinstance(value, bool) and \
        re.fullmatch(r"\d{1,3}", text) else None


@dataclass(frozen=True)
class Region:
    name: str
    title: str
    controller: str
    municipalities: tuple[str, ...]
    landing: Path | None = None
    data: Path | None = None
    key_file: Path | None = None

    def public(self) -> dict:
        """What the knowledge base, packages and reports may say about the region (no paths)."""
        return {"name": self.name, "title": self.title, "controller": self.controller,
                "municipalities": list(self.municipalities)}


def load_region(path: str | Path) -> Region:
    """Read and check a region file; RegionError with one line (what, where, what to do)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise RegionError(f"region file {path} cannot be read ({e.strerror}): check the path given to --region") \
            from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise RegionError(f"region file {path} is not valid YAML{where}: see regions/keusote.yaml for the format") \
            from None
    if not isinstance(doc, dict):
        raise RegionError(f"region file {path} is not a mapping of fields: see regions/keusote.yaml for the format")
    if unknown := sorted(set(map(str, doc)) - FIELDS):
        raise RegionError(f"region file {path}: unknown field(s) {', '.join(unknown)} (known: "
                          f"{', '.join(sorted(FIELDS))})")
    for field in ("name", "title", "controller", "municipalities"):
        if doc.get(field) in (None, "", []):
            raise RegionError(f"region file {path}: '{field}' is missing: see regions/keusote.yaml for the format")
    name = str(doc["name"])
    if not NAME.fullmatch(name) or name == NATIONAL:
        raise RegionError(f"region file {path}: name {name!r} must be short lower-case letters, digits or '-' "
                          f"(e.g. keusote), and not '{NATIONAL}'")
    if not isinstance(doc["municipalities"], list):
        raise RegionError(f"region file {path}: 'municipalities' must be a list of official municipality codes")
    known = municipalities()
    codes = []
    for value in doc["municipalities"]:
        code = normalise_code(value)
        if code is None or code not in known:
            raise RegionError(f"region file {path}: {value!r} is not a municipality code known to "
                              f"{MUNICIPALITIES_CSV.name} (official 3-digit codes, e.g. '106'); add the code "
                              "and its names there if it is a new municipality")
        if code in codes:
            raise RegionError(f"region file {path}: municipality {code} is listed twice")
        codes.append(code)

    def where(field):
        value = doc.get(field)
        return None if value in (None, "") else (path.parent / str(value)).resolve()

    return Region(name, str(doc["title"]), str(doc["controller"]), tuple(codes), where("landing"), where("data"),
                  where("key_file"))


def bound_region(data: Path) -> dict | None:
    """The region a data directory is bound to (``DATA/region.json``), or None (one unnamed region)."""
    path = Path(data) / BINDING
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RegionError(f"{path} cannot be read: restore it from the region file with "
                          "'tyokyky run --region FILE'") from None


def bind(data: Path, region: Region) -> None:
    """Bind the data directory to ``region``; refuse one that holds another region's build."""
    data = Path(data)
    current = bound_region(data)
    if current is not None and current.get("name") != region.name:
        raise RegionError(f"data directory {data} holds region {current.get('name')!r}, not {region.name!r}: "
                          "each region builds into its own data directory (set 'data' in the region file or "
                          "pass --data)")
    if current == region.public():
        return
    data.mkdir(parents=True, exist_ok=True)
    tmp = data / (BINDING + ".tmp")
    tmp.write_text(json.dumps(region.public(), ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, data / BINDING)


def write_kb_tables(con, data: Path) -> None:
    """``kb.region`` (one row; nulls for an unnamed region) and ``kb.municipalities`` (the code table,
    with in_region null for an unnamed region). Replaced at every build, carried-forward or not."""
    region = bound_region(data)
    con.execute("CREATE OR REPLACE TABLE kb.region (name VARCHAR, title VARCHAR, controller VARCHAR, "
                "municipalities VARCHAR[])")
    con.execute("INSERT INTO kb.region VALUES (?, ?, ?, ?)",
                [region.get("name"), region.get("title"), region.get("controller"), region.get("municipalities")]
                if region else [None, None, None, None])
    members = set(region["municipalities"]) if region else None
    rows = [(m.code, m.name_fi, m.name_sv, None if members is None else m.code in members)
            for m in municipalities().values()]
    con.execute("CREATE OR REPLACE TABLE kb.municipalities (municipality VARCHAR, name_fi VARCHAR, name_sv VARCHAR, "
                "in_region BOOLEAN)")
    con.executemany("INSERT INTO kb.municipalities VALUES (?, ?, ?, ?)", rows)


def label(region: dict | None, codes_in_data: list[str] | None = None) -> str:
    """How reports name the region: its title, or for an unnamed region the municipalities of its data."""
    if region and region.get("title"):
        return region["title"]
    names = municipalities()
    shown = [names[c].name_fi if c in names else c for c in (codes_in_data or [])]
    if not shown:
        return "nimeämätön alue"
    return "nimeämätön alue: " + ", ".join(shown[:5]) + (" …" if len(shown) > 5 else "")


@dataclass(frozen=True)
class Resolved:
    """A command's locations after the region file and the flags (flags win)."""
    landing: Path | None
    data: Path | None
    key_file: Path | None
    region: Region | None


def resolve(region_file, landing=None, data=None, key_file=None) -> Resolved:
    region = load_region(region_file) if region_file else None
    pick = lambda flag, field: Path(flag) if flag else (getattr(region, field) if region else None)  # noqa: E731
    return Resolved(pick(landing, "landing"), pick(data, "data"), pick(key_file, "key_file"), region)


def synth_weights(region: Region, outside_share: float = 0.05) -> dict[str, float]:
    """Home municipalities of a synthetic region: its members equally, and ``outside_share`` of the
    persons in the other municipalities of the code table (people move)."""
    others = [c for c in municipalities() if c not in region.municipalities]
    weights = {c: (1 - outside_share) / len(region.municipalities) for c in region.municipalities}
    weights.update({c: outside_share / len(others) for c in others})
    return weights


def region_seed(name: str) -> int:
    """A stable seed per region name, so that synthetic regions hold different persons."""
    import hashlib

    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


__all__ = ["Region", "RegionError", "Municipality", "municipalities", "load_region", "bind", "bound_region",
           "write_kb_tables", "label", "resolve", "synth_weights", "region_seed", "NATIONAL"]
