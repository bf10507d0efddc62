"""Region files, the municipality code table, the pooling rules and the national SQL, unit by unit."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import duckdb
import numpy as np
import pytest

from pipelines import regions
from pipelines.aggregates import load_spec, rule
from pipelines.knowledge_base import sql_files
from pipelines.pooling import nat_view_sql, pooled_medians
from tyokyky.regional import region_settings

REPO = Path(__file__).resolve().parent.parent
MEMBERS = {  # the programme's regions, official codes and names (Statistics Finland, koodistot.suomi.fi)
    "keusote": {"106": "Hyvinkää", "186": "Järvenpää", "505": "Mäntsälä", "543": "Nurmijärvi", "611": "Pornainen",
                "858": "Tuusula"},
    "eksote": {"153": "Imatra", "405": "Lappeenranta", "416": "Lemi", "441": "Luumäki", "580": "Parikkala",
               "689": "Rautjärvi", "700": "Ruokolahti", "739": "Savitaipale", "831": "Taipalsaari"},
    "rovaniemi-kemijarvi": {"698": "Rovaniemi", "320": "Kemijärvi"},
}


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_shipped_region_files(name):
    region = regions.load_region(REPO / "regions" / f"{name}.yaml")
    table = regions.municipalities()
    assert region.name == name and region.title and region.controller
    assert {c: table[c].name_fi for c in region.municipalities} == MEMBERS[name]
    assert region.data == (REPO / "data" / name).resolve() and region.key_file.name == f"{name}.key"


def test_swedish_names_where_official():
    table = regions.municipalities()
    assert {c: table[c].name_sv for c in ("106", "186", "611", "858", "405", "091", "092", "245")} == {
        "106": "Hyvinge", "186": "Träskända", "611": "Borgnäs", "858": "Tusby", "405": "Villmanstrand",
        "091": "Helsingfors", "092": "Vanda", "245": "Kervo"}
    assert table["698"].name_sv is None and table["698"].label == "Rovaniemi"
    assert table["106"].label == "Hyvinkää (Hyvinge)"


def test_synthetic_and_fixture_codes_are_in_the_table():
    from pipelines.synth import MUNICIPALITIES

    table = regions.municipalities()
    assert set(MUNICIPALITIES) <= set(table) and "049" in table
    assert all(len(c) == 3 and c.isdigit() for c in table)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "region.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = "name: keusote\ntitle: K\ncontroller: C\nmunicipalities: [106, '186', 91]\n"


def test_codes_are_normalised_and_paths_relative_to_the_file(tmp_path):
    region = regions.load_region(write(tmp_path, GOOD + "data: d\nkey_file: k/x.key\n"))
    assert region.municipalities == ("106", "186", "091")
    assert region.data == (tmp_path / "d").resolve() and region.key_file == (tmp_path / "k" / "x.key").resolve()
    assert region.landing is None


@pytest.mark.parametrize("text, message", [
    ("name: keusote\ntitle: K\ncontroller: C\n", "'municipalities' is missing"),
    (GOOD + "colour: blue\n", "unknown field(s) colour"),
    (GOOD.replace("keusote", "national"), "must be short lower-case"),
    (GOOD.replace("keusote", "Keski Uusimaa"), "must be short lower-case"),
    (GOOD.replace("91]", "999]"), "999 is not a municipality code"),
    (GOOD.replace("91]", "106]"), "municipality 106 is listed twice"),
    ("name: [unclosed\n", "is not valid YAML (line"),
    ("- a\n- b\n", "is not a mapping of fields"),
])
def test_bad_region_files_say_what_and_where(tmp_path, text, message):
    with pytest.raises(regions.RegionError) as e:
        regions.load_region(write(tmp_path, text))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_flags_override_the_region_file_and_bind_the_data_directory(tmp_path):
    f = write(tmp_path, GOOD + "data: d\nlanding: l\nkey_file: k.key\n")
    args = argparse.Namespace(region=str(f), landing=None, data=str(tmp_path / "flag"), key_file=None)
    settings, region = region_settings(args)
    assert settings.data == tmp_path / "flag" and settings.landing == (tmp_path / "l").resolve()
    assert settings.key_file == (tmp_path / "k.key").resolve()
    assert regions.bound_region(tmp_path / "flag")["name"] == "keusote"
    other = regions.Region("eksote", "E", "C", ("153",))
    with pytest.raises(regions.RegionError, match="holds region 'keusote', not 'eksote'"):
        regions.bind(tmp_path / "flag", other)


def test_kb_tables_of_a_named_and_an_unnamed_region(tmp_path):
    con = duckdb.connect()
    con.execute("CREATE SCHEMA kb")
    regions.write_kb_tables(con, tmp_path)
    assert con.sql("SELECT * FROM kb.region").fetchall() == [(None, None, None, None)]
    assert con.sql("SELECT count(*) FROM kb.municipalities WHERE in_region IS NOT NULL").fetchall() == [(0,)]
    regions.bind(tmp_path, regions.Region("rovaniemi-kemijarvi", "R–K", "Lappi", ("698", "320")))
    regions.write_kb_tables(con, tmp_path)
    assert con.sql("SELECT name, municipalities FROM kb.region").fetchall() == [("rovaniemi-kemijarvi", ["698", "320"])]
    assert con.sql("SELECT municipality FROM kb.municipalities WHERE in_region ORDER BY 1").fetchall() == [
        ("320",), ("698",)]


def test_synthetic_region_lives_mostly_in_its_municipalities(tmp_path):
    from pipelines.synth import write_landing_zone

    region = regions.Region("rovaniemi-kemijarvi", "R–K", "Lappi", ("698", "320"))
    write_landing_zone(tmp_path / "l", persons=400, seed=regions.region_seed(region.name),
                       municipalities=regions.synth_weights(region))
    homes = []
    for f in (tmp_path / "l" / "te").rglob("*.csv"):
        homes += [line.split(";")[1] for line in f.read_text(encoding="iso-8859-1").splitlines()[1:]]
    inside = np.mean([h in region.municipalities for h in homes])
    assert 0.85 < inside < 1.0  # people move: a few live elsewhere
    assert regions.region_seed("keusote") != regions.region_seed("eksote")


def test_every_ind_object_is_exported_or_kept_for_a_reason():
    spec = load_spec()
    made = {p.stem for p in sql_files("ind")}
    assert set(spec["views"]) | set(spec["not_exported"]) == made
    assert not set(spec["views"]) & set(spec["not_exported"])
    for view, vspec in spec["views"].items():
        cols = set(vspec["keys"]) | set(vspec["columns"])
        for c, s in vspec["columns"].items():
            kind, arg = rule(s)
            refs = arg if isinstance(arg, list) else [arg]
            if kind in ("count", "sum", "mean", "ratio", "share_of", "max", "min", "median", "none"):
                assert all(r is None or r in cols for r in refs), (view, c)
            if kind == "ivw":
                assert s["n"] in cols and arg in ("att", "se", "ci_low", "ci_high")


def test_national_sql_pools_by_the_rules():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA regional; CREATE SCHEMA nat")
    con.execute("""CREATE TABLE regional.t (region VARCHAR, k VARCHAR, n BIGINT, hits BIGINT, share DOUBLE,
                   mean DOUBLE, label VARCHAR, att DOUBLE, se DOUBLE, eur DECIMAL(14, 2), median DOUBLE)""")
    con.execute("""INSERT INTO regional.t VALUES ('a', 'x', 10, 4, 0.4, 0.5, 'X', 0.2, 0.1, 7, 3.0),
                   ('b', 'x', 30, 6, 0.2, 1.0, 'X', 0.4, 0.2, 8.25, 4.0),
                   ('b', 'y', 5, 5, 1.0, 2.0, 'Y', NULL, NULL, 1, 5.0)""")
    vspec = {"keys": ["k"], "columns": {
        "n": "count", "hits": {"count": "n"}, "share": {"ratio": ["hits", "n"]}, "mean": {"mean": "n"},
        "label": "same", "att": {"ivw": "att", "n": "n"}, "se": {"ivw": "se", "n": "n"}, "eur": {"sum": "n"},
        "median": {"median": "n"}}}
    con.execute("""CREATE TABLE regional.median_distributions AS SELECT * FROM (VALUES
        ('a', 't', 'x', 'median', 1, 2), ('a', 't', 'x', 'median', 10, 1), ('b', 't', 'x', 'median', 3, 1),
        ('b', 't', 'y', 'median', 5, 1)) v(region, indicator, key, measure, days, n)""")
    pooled_medians(con)
    types = dict(con.sql("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 't'").fetchall())
    con.execute(nat_view_sql("t", vspec, types))
    x, y = con.sql("SELECT * FROM nat.t WHERE region = 'national' ORDER BY k").fetchall()
    w = [1 / 0.1 ** 2, 1 / 0.2 ** 2]
    assert x[:7] == ("national", "x", 40, 10, 10 / 40, (0.5 * 10 + 1.0 * 30) / 40, "X")
    assert math.isclose(x[7], (0.2 * w[0] + 0.4 * w[1]) / sum(w)) and math.isclose(x[8], math.sqrt(1 / sum(w)))
    assert str(x[9]) == "15.25"
    assert x[10] == 2.0  # the median of 1, 1, 3, 10 from the summed distributions, not of regional medians
    assert y[1:7] == ("y", 5, 5, 1.0, 2.0, "Y") and y[7] is None and y[8] is None and y[10] == 5.0
    assert [r[0] for r in con.sql("SELECT region FROM nat.t").fetchall()] == ["a", "b", "b", "national", "national"]


def test_reports_name_a_region_by_its_title_or_its_municipalities():
    assert regions.label({"name": "eksote", "title": "Etelä-Karjala (Eksote)"}, ["153"]) == "Etelä-Karjala (Eksote)"
    assert regions.label(None, ["091", "106", "186", "505", "543", "611"]) == \
        "nimeämätön alue: Helsinki, Hyvinkää, Järvenpää, Mäntsälä, Nurmijärvi …"
    assert regions.label({"name": None, "title": None}, []) == "nimeämätön alue"


def test_the_unnamed_sample_does_not_claim_the_three_regions(sample_build):
    from pypdf import PdfReader

    (pdf,) = (sample_build["data"] / "reports").glob("*.pdf")
    text = " ".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "nimeämätön alue:" in text and "Eksote" not in text and "Rovaniemi–Kemijärvi" not in text


def test_region_commands_answer_misuse_in_one_line(tmp_path, capsys):
    from tyokyky.cli import main

    assert main(["synth"]) == 2
    assert "--out DIR (or --region FILE" in capsys.readouterr().err
    assert main(["run", "--region", str(tmp_path / "missing.yaml")]) == 2
    assert "region file" in (err := capsys.readouterr().err) and "cannot be read" in err
    no_landing = write(tmp_path, GOOD)
    assert main(["synth", "--region", str(no_landing)]) == 2
    assert "has no 'landing' and no --out" in capsys.readouterr().err
    assert main(["export-aggregates", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "p")]) == 1
    assert "no knowledge base in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pool", "--out", str(tmp_path / "n")])
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "PACKAGE" in err
