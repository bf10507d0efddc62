"""A region's aggregate package for the national evaluation (``tyokyky export-aggregates``).

One folder: a Parquet file per ``ind`` aggregate listed in ``pipelines/pooling.yaml`` and
``manifest.json`` (region, spec version, the build's fingerprints, sha256 of every file). The
evaluators' package holds the views as they are — exact counts and sums, under the controllers'
agreement — and never a person-level row or a pseudonym: only the listed aggregate views leave,
and a view with a pseudonym-like column stops the export. The public package
(:mod:`reports.public_aggregates`) is the same :func:`collect` and :func:`write` with every cell
passed through the disclosure rules and the release recorded before it is published.

The knowledge base is read through :func:`pipelines.kb_access.connect` (read-only, no file
access); the package is written to ``OUT.partial`` and renamed when complete.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

HERE = Path(__file__).parent
SPEC_FILE = HERE / "pooling.yaml"
MANIFEST = "manifest.json"
FORBIDDEN_COLUMNS = {"pseudonym", "erasure_token", "hetu", "henkilotunnus"}


class AggregateError(Exception):
    """The package cannot be written or read; one line for the user."""


def load_spec() -> dict:
    return yaml.safe_load(SPEC_FILE.read_text(encoding="utf-8"))


def rule(spec) -> tuple[str, object]:
    """A column rule as (kind, argument): 'count' → ('count', None), {mean: n} → ('mean', 'n')."""
    if isinstance(spec, str):
        return spec, None
    ((kind, arg),) = [(k, v) for k, v in spec.items() if k not in ("within", "n")]
    return kind, arg


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def definitions_digest(con, views) -> str:
    """SHA-256 over the SQL of the exported views as built: packages pool only when equal."""
    rows = con.sql("SELECT view_name, sql FROM duckdb_views() WHERE schema_name = 'ind' ORDER BY view_name").fetchall()
    wanted = set(views)
    return hashlib.sha256("\n".join(f"{n}\t{s}" for n, s in rows if n in wanted).encode()).hexdigest()


@dataclass
class ExportResult:
    out: Path
    region: str
    files: int
    public: bool
    release: Path | None = None


@dataclass
class Collected:
    """What a package is made of, read from one knowledge base."""
    data: Path
    region: dict
    info: dict
    inputs: dict
    params: dict
    digest: str
    tables: dict[str, pa.Table]


def _one(con, sql: str) -> dict:
    rel = con.sql(sql)
    return dict(zip(rel.columns, rel.fetchall()[0]))


def collect(data: Path, public: bool = False) -> Collected:
    """Read the exported views and the build's facts from the knowledge base in ``data``."""
    import duckdb

    from pipelines.kb_access import connect
    from pipelines.settings import KB_FILE

    data = Path(data)
    spec = load_spec()
    try:
        con = connect(data / KB_FILE)
    except FileNotFoundError:
        raise AggregateError(f"no knowledge base in {data}: build the region first with "
                             "'tyokyky run --region FILE' (or pass --data DIR)") from None
    except duckdb.Error as e:
        raise AggregateError(f"cannot open the knowledge base in {data} read-only: {str(e).splitlines()[0]}") from None
    try:
        try:
            region = _one(con, "SELECT name, title, controller, municipalities FROM kb.region")
        except duckdb.CatalogException:
            region = {"name": None}
        if not region["name"]:
            raise AggregateError(f"the knowledge base in {data} belongs to no named region: build it with "
                                 "'tyokyky run --region FILE' so that the package says whose figures it holds")
        region["municipalities"] = list(region["municipalities"] or [])
        info = _one(con, "SELECT as_of, built_at, key_fingerprint, pipeline_version FROM kb.build_info")
        inputs = dict(con.sql("SELECT partner, signature FROM kb.build_inputs ORDER BY partner").fetchall())
        params = _one(con, "SELECT suppression_threshold, rounding_base, midpoint_rounding FROM kb.parameters")
        tables = {}
        for view, vspec in spec["views"].items():
            if public and not vspec.get("public", True):
                continue
            table = con.sql(f"SELECT * FROM ind.{view}").to_arrow_table()
            expected = [*vspec["keys"], *vspec["columns"]]
            if table.column_names != expected:
                raise AggregateError(f"ind.{view} has columns {table.column_names}, pipelines/pooling.yaml says "
                                     f"{expected}: update the pooling rules with the view")
            if FORBIDDEN_COLUMNS & {c.lower() for c in table.column_names}:
                raise AggregateError(f"ind.{view} holds a person-level column: it may not leave the region")
            tables[view] = table
        digest = definitions_digest(con, spec["views"])
    finally:
        con.close()
    return Collected(data, region, info, inputs, params, digest, tables)


def write(c: Collected, out: Path, disclosure=None, before_publish=None) -> ExportResult:
    """Write the package to ``OUT.partial``, let ``before_publish(manifest)`` record it, then rename."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AggregateError(f"{out} exists and is not an empty folder: give a new folder to --out")
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    spec = load_spec()
    files = {}
    for view, table in c.tables.items():
        path = partial / f"{view}.parquet"
        pq.write_table(table, path, compression="zstd")
        files[path.name] = {"view": f"ind.{view}", "rows": table.num_rows, "bytes": path.stat().st_size,
                            "sha256": sha256_file(path)}
    manifest = {
        "package_format": spec["package_format"], "spec_version": spec["spec_version"],
        "region": c.region, "public": disclosure is not None,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "build": {"as_of": str(c.info["as_of"]) if c.info["as_of"] else None, "built_at": str(c.info["built_at"]),
                  "key_fingerprint": c.info["key_fingerprint"], "pipeline_version": c.info["pipeline_version"],
                  "inputs": c.inputs, "definitions_sha256": c.digest},
        "pooling_rules_sha256": sha256_file(SPEC_FILE),
        "disclosure": disclosure.rules.as_dict() if disclosure is not None else None,
        "files": files,
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True),
                                    encoding="utf-8")
    release = before_publish(partial / MANIFEST) if before_publish else None
    if out.exists():
        out.rmdir()
    os.replace(partial, out)
    return ExportResult(out, c.region["name"], len(files), disclosure is not None, release)


def export(data: Path, out: Path) -> ExportResult:
    """The evaluators' package: the exact views of the region's knowledge base in ``data``."""
    return write(collect(data), out)


@dataclass
class Package:
    path: Path
    manifest: dict

    @property
    def region(self) -> str:
        return self.manifest["region"]["name"]

    def table(self, view: str) -> pa.Table:
        return pq.read_table(self.path / f"{view}.parquet")


def read_package(path: Path, spec: dict | None = None) -> Package:
    """Open a package and verify it: manifest, format, spec version, every file's checksum."""
    spec = spec or load_spec()
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise AggregateError(f"{path} is not an aggregate package (no {MANIFEST}): give folders written by "
                             "'tyokyky export-aggregates'")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        region = manifest["region"]["name"]
        files = manifest["files"]
    except (ValueError, KeyError, TypeError):
        raise AggregateError(f"{manifest_path} is damaged (not the manifest of an aggregate package): "
                             "export the package again") from None
    if manifest.get("package_format") != spec["package_format"]:
        raise AggregateError(f"{path}: package format {manifest.get('package_format')} is not "
                             f"{spec['package_format']}: export it again with this version of tyokyky")
    if manifest.get("spec_version") != spec["spec_version"]:
        raise AggregateError(f"{path} (region {region}): spec version {manifest.get('spec_version')} is not "
                             f"{spec['spec_version']}: export it again with this version of tyokyky")
    listed = set(files)
    present = {p.name for p in path.iterdir() if p.name != MANIFEST}
    if extra := sorted(present - listed):
        raise AggregateError(f"{path} (region {region}) holds files its manifest does not list "
                             f"({', '.join(extra)}): export the package again")
    for name, meta in sorted(files.items()):
        file = path / name
        if not file.is_file():
            raise AggregateError(f"{path} (region {region}): {name} is missing: export the package again")
        if sha256_file(file) != meta.get("sha256"):
            raise AggregateError(f"{path} (region {region}): the checksum of {name} does not match the manifest "
                                 "(changed or damaged after export): export the package again")
    return Package(path, manifest)
