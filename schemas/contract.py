"""Partner data contracts: the YAML files beside this module, loaded and checked.

A contract says everything a reader and the staging step need to know about one
partner's export, so that adding a partner with a known file format is one new
YAML file. Loading is strict: a misspelt key fails at start-up, not mid-build.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

HERE = Path(__file__).parent
FORMATS = {"delimited", "fixed_width", "xlsx", "jsonl"}
VARIANTS = {"raw", "pseudonymised"}  # as exported / pseudonymised by the partner (tyokyky pseudonymise-export)
TYPES = {"identity", "text", "code", "date", "month", "integer", "decimal", "cents", "boolean",
         "municipality"}
DATE_FORMATS = {"fi": "%d.%m.%Y", "iso": "%Y-%m-%d"}
#: what a partner's data is for beyond its own tables: ``programme`` — its clients are the
#: programme's clients (held back until consent is in force); ``as_of`` — its latest loaded
#: period sets the knowledge base's as-of date. Consent snapshots are marked by ``consent``.
ROLES = {"programme", "as_of"}


class ContractError(Exception):
    """A contract file is malformed (a developer error, caught at load time)."""


@dataclass(frozen=True)
class Column:
    name: str                      # column name in the partner's file
    type: str
    target: str                    # column name in staging and the knowledge base
    required: bool = False
    codes: dict[str, str] | None = None   # allowed source value -> stored value
    formats: tuple[str, ...] = ()  # date formats, tried in order
    decimal_separator: str = "."   # ".", "," or "any"
    minimum: float | None = None
    maximum: float | None = None
    digits: int | None = None      # fixed number of digits (fixed-width numbers)
    range_by: dict | None = None   # {"column": source column, "ranges": {code: {min, max, decimals}}}
    start: int | None = None       # fixed width: 1-based inclusive positions
    end: int | None = None


@dataclass(frozen=True)
class Contract:
    partner: str
    description: str
    delivery: str                  # "incremental" or "snapshot"
    file: dict
    identifier: str
    natural_key: tuple[str, ...]
    columns: tuple[Column, ...]
    rules: tuple[dict, ...] = ()
    warnings: tuple[dict, ...] = ()
    consent: dict | None = None    # {"withdrawn": column, "given": column} for consent snapshots
    label: str = ""                # the partner's name in the Finnish report
    roles: tuple[str, ...] = ()    # see ROLES
    path: Path = field(default=HERE, compare=False)
    accepts: tuple[str, ...] = ("raw",)  # delivery variants the partner may send

    @property
    def format(self) -> str:
        return self.file["format"]

    @property
    def encoding(self) -> str:
        return self.file.get("encoding", "utf-8")

    @property
    def line_end(self) -> str:
        """How the partner's system ends a line (CRLF for fixed width unless said; readers of the
        other formats take either)."""
        return self.file.get("line_end", "\r\n" if self.format == "fixed_width" else "\n")

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def data_columns(self) -> tuple[Column, ...]:
        """Every column but the identity code."""
        return tuple(c for c in self.columns if c.type != "identity")

    def key_columns(self, identifier_as: str = "pseudonym") -> list[str]:
        """The natural key as staged column names (the identity code is staged as ``identifier_as``)."""
        return [identifier_as if k == self.identifier else self.column(k).target for k in self.natural_key]

    def file_name_regex(self) -> re.Pattern:
        pattern = re.escape(self.file["name"]).replace(r"\{period\}", r"(?P<period>\d{6})")
        return re.compile(f"^{pattern}$")


def _column(raw: dict, partner: str) -> Column:
    known = {"name", "as", "type", "required", "codes", "formats", "decimal_separator", "min", "max",
             "digits", "range_by", "start", "end"}
    unknown = set(raw) - known
    if unknown:
        raise ContractError(f"{partner}: column {raw.get('name')!r} has unknown keys {sorted(unknown)}")
    ctype = raw["type"]
    if ctype not in TYPES:
        raise ContractError(f"{partner}: column {raw['name']!r} has unknown type {ctype!r}")
    codes = raw.get("codes")
    if isinstance(codes, list):
        codes = {str(c): str(c) for c in codes}
    elif isinstance(codes, dict):
        codes = {str(k): str(v) for k, v in codes.items()}
    formats = tuple(raw.get("formats", ()))
    for f in formats:
        if f not in DATE_FORMATS:
            raise ContractError(f"{partner}: column {raw['name']!r} has unknown date format {f!r}")
    if ctype == "date" and not formats:
        raise ContractError(f"{partner}: date column {raw['name']!r} needs formats")
    return Column(
        name=raw["name"], type=ctype, target=raw.get("as", raw["name"]),
        required=bool(raw.get("required", ctype == "identity")), codes=codes, formats=formats,
        decimal_separator=raw.get("decimal_separator", "."), minimum=raw.get("min"),
        maximum=raw.get("max"), digits=raw.get("digits"), range_by=raw.get("range_by"),
        start=raw.get("start"), end=raw.get("end"),
    )


def load_contract(path: str | Path) -> Contract:
    path = Path(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    partner = raw.get("partner") or path.stem
    known = {"partner", "description", "delivery", "file", "identifier", "natural_key", "columns",
             "rules", "warnings", "consent", "label", "roles", "accepts"}
    if set(raw) - known:
        raise ContractError(f"{partner}: unknown keys {sorted(set(raw) - known)}")
    if set(raw.get("roles") or ()) - ROLES:
        raise ContractError(f"{partner}: unknown roles {sorted(set(raw['roles']) - ROLES)} (known: {sorted(ROLES)})")
    if raw["file"].get("format") not in FORMATS:
        raise ContractError(f"{partner}: unknown file format {raw['file'].get('format')!r}")
    if raw.get("delivery") not in {"incremental", "snapshot"}:
        raise ContractError(f"{partner}: delivery must be 'incremental' or 'snapshot'")
    columns = tuple(_column(c, partner) for c in raw["columns"])
    names = {c.name for c in columns}
    identity = [c for c in columns if c.type == "identity"]
    if len(identity) != 1 or identity[0].name != raw["identifier"]:
        raise ContractError(f"{partner}: exactly one identity column, named by 'identifier', is needed")
    for k in raw["natural_key"]:
        if k not in names:
            raise ContractError(f"{partner}: natural key column {k!r} is not a column")
    if raw["identifier"] not in raw["natural_key"]:  # a later version is then always of the same person,
        # so a new delivery changes no other person's records (the kb build's refresh by person)
        raise ContractError(f"{partner}: the natural key must include the identifier column {raw['identifier']!r}")
    for rule in raw.get("rules", []):
        if rule.get("rule") not in {"not_before", "not_greater"}:
            raise ContractError(f"{partner}: unknown rule {rule!r}")
        if rule["column"] not in names or rule["other"] not in names:
            raise ContractError(f"{partner}: rule {rule!r} names an unknown column")
    for col in (raw.get("consent") or {}).values():
        if col not in names:
            raise ContractError(f"{partner}: consent column {col!r} is not a column")
    accepts = tuple(raw.get("accepts", ["raw"]))
    if not accepts or set(accepts) - VARIANTS:
        raise ContractError(f"{partner}: accepts must list one or more of {sorted(VARIANTS)}")
    if raw["file"]["format"] == "fixed_width":
        for c in columns:
            if c.start is None or c.end is None:
                raise ContractError(f"{partner}: fixed-width column {c.name!r} needs start and end")
            if not 1 <= c.start <= c.end <= raw["file"].get("record_length", 0):
                raise ContractError(f"{partner}: fixed-width column {c.name!r} ({c.start}–{c.end}) does not lie "
                                    "within the record (positions are 1-based and inclusive, up to record_length)")
    return Contract(
        partner=partner, description=raw.get("description", ""), delivery=raw["delivery"],
        file=raw["file"], identifier=raw["identifier"], natural_key=tuple(raw["natural_key"]),
        columns=columns, rules=tuple(raw.get("rules", ())), warnings=tuple(raw.get("warnings", ())),
        consent=raw.get("consent"), label=raw.get("label") or partner, roles=tuple(raw.get("roles") or ()),
        path=path, accepts=accepts,
    )


def with_role(contracts: dict[str, Contract], role: str) -> list[str]:
    """The partners (of ``contracts``) that have ``role``."""
    if role not in ROLES:
        raise ValueError(role)
    return [p for p, c in contracts.items() if role in c.roles]


@cache
def load_contracts(directory: str | None = None) -> dict[str, Contract]:
    """Every ``*.yaml`` contract in ``directory`` (default: this package), by partner name."""
    folder = Path(directory) if directory else HERE
    contracts = {}
    for path in sorted(folder.glob("*.yaml")):
        c = load_contract(path)
        contracts[c.partner] = c
    return contracts
