"""Three synthetic regions, each built on its own through Dagster (`tyokyky run --region`), exported
and pooled (`tyokyky export-aggregates`, `tyokyky pool`), against one build over the union of
their data: every exactly poolable figure agrees; the impact estimates pool by inverse variance;
packages hold no person-level row; pooling refuses what it cannot trust."""
from __future__ import annotations

import json
import math
import shutil
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines.aggregates import load_spec, rule
from pseudonymize import generate_secret_file, load_key_file
from tests import handmade
from tests.conftest import build, kb, rows
from tests.landing_writer import Landing
from tests.privacy import landing_codes, scan
from tests.union_landing import write_union
from tyokyky.cli import main

REGIONS = {
    "keusote": ("Keski-Uusimaa (Keusote)", ["106", "186", "505", "543", "611", "858"]),
    "eksote": ("Etelä-Karjala (Eksote)", ["153", "405", "416", "441", "580", "689", "700", "739", "831"]),
    "rovaniemi-kemijarvi": ("Rovaniemi–Kemijärvi", ["698", "320"]),
}
SPEC = load_spec()
NOT_EXACT = {"none", "text", "ivw"}


def region_file(root: Path, name: str, title: str, codes: list[str], **extra) -> Path:
    path = root / f"{name}.yaml"
    lines = [f"name: {name}", f"title: {title}", f"controller: {title} hyvinvointialue",
             f"municipalities: {json.dumps(codes)}",
             *(f"{k}: {v}" for k, v in {"landing": f"{name}/landing", "data": f"{name}/data",
                                          "key_file": f"keys/{name}.key", **extra}.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def regions(tmp_path_factory, session_key_file):
    root = tmp_path_factory.mktemp("regions")
    files = {n: region_file(root, n, t, c) for n, (t, c) in REGIONS.items()}
    for name, f in files.items():
        assert main(["synth", "--region", str(f), "--persons", "350"]) == 0
        assert main(["run", "--region", str(f)]) == 0
        assert main(["export-aggregates", "--data", str(root / name / "data"), "--out", str(root / "pkg" / name)]) == 0
    assert main(["pool", "--out", str(root / "national"), *(str(root / "pkg" / n) for n in REGIONS)]) == 0
    write_union([root / n / "landing" for n in REGIONS], root / "union" / "landing")
    build(root / "union" / "landing", root / "union" / "data", session_key_file)
    return root


def nat(root: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(root / "national" / "national.duckdb"), read_only=True)


def same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def test_union_holds_every_regions_persons_once(regions):
    regional = sum(kb(regions / n / "data").sql("SELECT count(*) FROM kb.clients").fetchall()[0][0] for n in REGIONS)
    union = kb(regions / "union" / "data").sql("SELECT count(*) FROM kb.clients").fetchall()[0][0]
    assert union == regional > 1000  # disjoint persons: the union counts each once


def test_pooled_regions_equal_one_build_over_their_union(regions):
    """Every exactly poolable figure of every exact view: the national rows = the union build."""
    union, con = kb(regions / "union" / "data"), nat(regions)
    compared = 0
    for view, vspec in SPEC["views"].items():
        if not vspec.get("exact", True):
            continue
        keys = vspec["keys"]
        exact = [c for c, s in vspec["columns"].items() if rule(s)[0] not in NOT_EXACT]
        expected = {tuple(r[k] for k in keys): r for r in rows(union, f"SELECT * FROM ind.{view}")}
        national = {tuple(r[k] for k in keys): r
                    for r in rows(con, f"SELECT * FROM nat.{view} WHERE region = 'national'")}
        assert set(national) == set(expected), view
        for key, row in expected.items():
            for c in exact:
                assert same(national[key][c], row[c]), (view, key, c, national[key][c], row[c])
                compared += 1
    assert compared > 1000


def test_regional_rows_are_the_regions_own_views(regions):
    con = nat(regions)
    for name in REGIONS:
        own = kb(regions / name / "data")
        for view in SPEC["views"]:
            keys = SPEC["views"][view]["keys"]
            mine = {tuple(r[k] for k in keys): r for r in rows(own, f"SELECT * FROM ind.{view}")}
            pooled = {tuple(r[k] for k in keys): r
                      for r in rows(con, f"SELECT * EXCLUDE (region) FROM nat.{view} WHERE region = '{name}'")}
            assert pooled.keys() == mine.keys(), (name, view)
            for key, r in mine.items():  # floating-point sums may differ in the last bit between two reads
                assert all(same(pooled[key][c], v) for c, v in r.items()), (name, view, key)


def test_impact_estimates_pool_by_inverse_variance(regions):
    con = nat(regions)
    for outcome in ("employed_open_market_6m", "employed_open_market_12m", "employed_months_12m",
                    "municipal_cost_change_eur"):
        regional = rows(con, f"SELECT * FROM nat.impact_estimates WHERE outcome = '{outcome}' AND region <> 'national'")
        (pooled,) = rows(con, f"SELECT * FROM nat.impact_estimates WHERE outcome = '{outcome}' AND region = 'national'")
        used = [r for r in regional if r["se"]]
        assert len(used) == 3
        w = [1 / r["se"] ** 2 for r in used]
        att = sum(wi * r["att"] for wi, r in zip(w, used)) / sum(w)
        se = math.sqrt(1 / sum(w))
        assert pooled["att"] == pytest.approx(att) and pooled["se"] == pytest.approx(se)
        assert pooled["ci_low"] == pytest.approx(att - 1.96 * se)
        assert pooled["ci_high"] == pytest.approx(att + 1.96 * se)
        assert se < min(r["se"] for r in used)
        assert pooled["treated"] == sum(r["treated"] for r in regional)
        n = pooled["treated"]
        assert pooled["treated_mean"] == pytest.approx(sum(r["treated_mean"] * r["treated"] for r in regional) / n)


def test_medians_pool_from_the_summed_distributions(regions):
    """National medians are medians over every region's values (not a mean of medians): checked by
    the exactness test; here, that they exist and differ from the naive average where regions differ."""
    con = nat(regions)
    national = rows(con, "SELECT quarter, median_wait_days FROM nat.ttk_process WHERE region = 'national'")
    assert national and all(r["median_wait_days"] is not None for r in national)
    assert rows(con, "SELECT sum(n) AS n FROM nat.median_distributions WHERE region = 'national' AND "
                     "indicator = 'ttk_process' AND measure = 'median_wait_days'")[0]["n"] == \
        rows(con, "SELECT sum(started) AS n FROM nat.ttk_process WHERE region = 'national'")[0]["n"]


def test_nat_views_lead_with_region_and_keep_the_ind_columns(regions):
    con, own = nat(regions), kb(regions / "keusote" / "data")
    for view in SPEC["views"]:
        cols = [c for (c,) in con.sql(f"SELECT column_name FROM duckdb_columns() WHERE schema_name = 'nat' "
                                      f"AND table_name = '{view}' ORDER BY column_index").fetchall()]
        assert cols == ["region", *own.sql(f"SELECT * FROM ind.{view} LIMIT 0").columns], view
    assert [r["region"] for r in rows(con, "SELECT region FROM nat.regions ORDER BY region")] == sorted(REGIONS)


def test_packages_hold_no_person_level_row_nor_pseudonym(regions):
    for name in REGIONS:
        pkg = regions / "pkg" / name
        manifest = json.loads((pkg / "manifest.json").read_text())
        assert manifest["region"]["name"] == name and manifest["spec_version"] == SPEC["spec_version"]
        assert set(manifest["files"]) == {f"{v}.parquet" for v in SPEC["views"]}
        assert len(manifest["build"]["key_fingerprint"]) == 64 and manifest["build"]["definitions_sha256"]
        pseudonyms = {p for (p,) in kb(regions / name / "data").sql("SELECT pseudonym FROM kb.clients").fetchall()}
        for f in pkg.glob("*.parquet"):
            table = pq.read_table(f)
            assert "pseudonym" not in table.column_names
            text = " ".join(str(v) for col in table.columns for v in col.to_pylist())
            assert not [p for p in pseudonyms if p in text], f
            assert not [p for p in pseudonyms if p.encode() in f.read_bytes()], f
        assert scan([pkg, regions / "national"], landing_codes(regions / name / "landing")) == []


def test_each_region_has_its_own_key_and_no_shared_pseudonym(regions):
    sets = [{p for (p,) in kb(regions / n / "data").sql("SELECT pseudonym FROM kb.clients").fetchall()}
            for n in REGIONS]
    fingerprints = {kb(regions / n / "data").sql("SELECT key_fingerprint FROM kb.build_info").fetchall()[0][0]
                    for n in REGIONS}
    assert len(fingerprints) == 3
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])


def test_a_person_in_two_regions_gets_unrelated_pseudonyms(tmp_path):
    """The same six hand-made persons delivered in two regions: each region's pseudonyms are the HMAC
    under its own key, and no pseudonym appears in both."""
    files = {}
    for name, (title, codes) in list(REGIONS.items())[:2]:
        files[name] = region_file(tmp_path, name, title, codes)
        handmade.write(Landing(tmp_path / name / "landing"))
        generate_secret_file(tmp_path / "keys" / f"{name}.key")
        assert main(["run", "--region", str(files[name])]) == 0
    found = {}
    for name in files:
        key = load_key_file(tmp_path / "keys" / f"{name}.key")
        clients = {p for (p,) in kb(tmp_path / name / "data").sql("SELECT pseudonym FROM kb.clients").fetchall()}
        assert key.pseudonym(handmade.P1) in clients and key.pseudonym(handmade.P6) in clients
        found[name] = clients
    a, b = found.values()
    assert len(a) == len(b) >= 4 and not (a & b)


def test_clients_outside_the_region_stay_and_are_counted(regions):
    con = kb(regions / "rovaniemi-kemijarvi" / "data")
    total = con.sql("SELECT count(*) FROM kb.clients").fetchall()[0][0]
    by = rows(con, "SELECT * FROM ind.clients_by_municipality")
    assert sum(r["clients"] for r in by) == total
    outside = rows(con, "SELECT * FROM ind.clients_outside_region")
    assert outside and all(r["municipality"] not in ("698", "320") for r in outside)
    assert sum(r["clients"] for r in outside) == sum(r["clients"] for r in by if r["in_region"] is False) > 0
    assert {r["municipality"] for r in by if r["in_region"]} == {"698", "320"}
    assert rows(con, "SELECT * FROM kb.region")[0]["name"] == "rovaniemi-kemijarvi"


def test_reports_name_the_regions_built(regions):
    from pypdf import PdfReader

    def text(path):
        return " ".join(" ".join(p.extract_text() for p in PdfReader(path).pages).split())

    for name, (title, _) in REGIONS.items():
        pdf = text(next((regions / name / "data" / "reports").glob("*.pdf")))
        assert title in pdf
        assert not [t for n, (t, _) in REGIONS.items() if n != name and t in pdf]
        assert "kotikunta on alueen ulkopuolella" in pdf
    national = text(next((regions / "national" / "reports").glob("kansallinen_raportti_*.pdf")))
    assert all(t in national for t, _ in REGIONS.values()) and "Koko maa" in national
    (record,) = (regions / "national" / "releases").glob("*.json")
    cells = json.loads(record.read_text())["cells"]
    assert any(k.startswith("national/") for k in cells) and any(k.startswith("keusote/") for k in cells)
    small = [c for c in cells.values() if c["released"].isdigit() and 0 < int(c["released"]) < 5]
    assert not small


def test_public_package_passes_the_disclosure_rules(regions):
    out = regions / "public" / "keusote"
    data = regions / "keusote" / "data"
    assert main(["export-aggregates", "--data", str(data), "--out", str(out), "--public"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["public"] is True and manifest["disclosure"]["threshold"] == 5
    assert "impact_balance.parquet" not in manifest["files"]
    exact = {r["window_months"]: r for r in rows(kb(data), "SELECT * FROM ind.employment_outcomes")}
    published = {r["window_months"]: r for r in pq.read_table(out / "employment_outcomes.parquet").to_pylist()}
    hidden = 0
    for w, r in exact.items():
        for c in ("clients", "employed_open_market", "subsidised", "unemployed", "in_services", "other"):
            value = published[w][c]
            if 0 < r[c] < 5:
                assert value is None
            if value is not None:
                assert value % 5 == 0 and abs(value - r[c]) <= 2
            hidden += value is None
    assert hidden > 0
    for view, vspec in SPEC["views"].items():
        if f"{view}.parquet" not in manifest["files"]:
            continue
        counts = [c for c, s in vspec["columns"].items() if rule(s)[0] == "count"]
        for r in pq.read_table(out / f"{view}.parquet").to_pylist():
            assert all(r[c] is None or r[c] == 0 or r[c] >= 5 for c in counts), (view, r)
    releases = list((data / "releases").glob("*_manifest.json"))
    assert len(releases) == 1
    record = json.loads(releases[0].read_text())
    assert record["output"] == "aggregates_public" and record["cells_by_status"]["suppressed"] > 0


def _copy_package(regions: Path, name: str, dest: Path) -> Path:
    shutil.copytree(regions / "pkg" / name, dest)
    return dest


def test_pool_refuses_what_it_cannot_trust(regions, tmp_path, capsys):
    pkg = regions / "pkg"
    out = str(tmp_path / "out")
    assert main(["pool", "--out", out, str(pkg / "keusote"), str(pkg / "keusote")]) == 1
    assert "region keusote is given twice" in capsys.readouterr().err

    tampered = _copy_package(regions, "eksote", tmp_path / "tampered")
    table = pq.read_table(tampered / "employment_outcomes.parquet")
    pq.write_table(table.slice(1), tampered / "employment_outcomes.parquet")
    assert main(["pool", "--out", out, str(pkg / "keusote"), str(tampered)]) == 1
    err = capsys.readouterr().err
    assert "checksum of employment_outcomes.parquet does not match" in err and len(err.strip().splitlines()) == 1

    old = _copy_package(regions, "eksote", tmp_path / "old")
    manifest = json.loads((old / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps({**manifest, "spec_version": 1}))
    assert main(["pool", "--out", out, str(pkg / "keusote"), str(old)]) == 1
    assert "spec version 1 is not 2" in capsys.readouterr().err

    same_key = _copy_package(regions, "eksote", tmp_path / "samekey")
    manifest = json.loads((same_key / "manifest.json").read_text())
    keusote = json.loads((pkg / "keusote" / "manifest.json").read_text())
    manifest["build"]["key_fingerprint"] = keusote["build"]["key_fingerprint"]
    (same_key / "manifest.json").write_text(json.dumps(manifest))
    assert main(["pool", "--out", out, str(pkg / "keusote"), str(same_key)]) == 1
    assert "built with the same key" in capsys.readouterr().err

    assert main(["pool", "--out", out, str(tmp_path)]) == 1
    assert "is not an aggregate package" in capsys.readouterr().err
    assert not (tmp_path / "out" / "national.duckdb").exists()


def test_a_data_directory_holds_one_region(regions, capsys):
    other = region_file(regions, "toinen", "Toinen alue", ["091"], data="keusote/data")
    assert main(["run", "--region", str(other)]) == 2
    err = capsys.readouterr().err
    assert "holds region 'keusote', not 'toinen'" in err and len(err.strip().splitlines()) == 1


def test_export_needs_a_named_region(regions, tmp_path, capsys):
    assert main(["export-aggregates", "--data", str(regions / "union" / "data"), "--out", str(tmp_path / "p")]) == 1
    assert "belongs to no named region" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_amounts_stay_exact_decimals(regions):
    con = nat(regions)
    (total,) = rows(con, "SELECT * FROM nat.cost_savings WHERE region = 'national' AND benefit = 'TOTAL'")
    parts = rows(con, "SELECT * FROM nat.cost_savings WHERE region <> 'national' AND benefit = 'TOTAL'")
    assert isinstance(total["before_eur"], Decimal)
    assert total["before_eur"] == sum(r["before_eur"] for r in parts)


def test_regions_build_side_by_side_each_in_its_own_deployment(regions):
    """Item 5: one deployment per region (its data directory, Dagster instance and key). Two regions'
    builds started at the same moment both succeed, overlap in time, and each instance holds only
    its own region's materialisations."""
    import subprocess
    import sys

    from dagster import AssetKey

    from assets.instance import open_instance

    names = ["keusote", "eksote"]
    procs = [subprocess.Popen([sys.executable, "-m", "tyokyky.cli", "run", "--region", str(regions / f"{n}.yaml")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in names]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    spans = []
    for name in names:
        data = regions / name / "data"
        instance = open_instance(data / ".dagster")
        event = instance.get_latest_materialization_event(AssetKey("knowledge_base"))
        assert event.asset_materialization.metadata["path"].value == str(data / "tyokyky.duckdb")
        (record,) = instance.get_run_records(limit=1)
        spans.append((record.start_time, record.end_time))
        records = instance.fetch_materializations(AssetKey("knowledge_base"), limit=100).records
        assert len(records) >= 2  # the first build and this one
        assert {r.asset_materialization.metadata["path"].value for r in records} == {str(data / "tyokyky.duckdb")}
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1  # the two regions' builds ran at the same time
