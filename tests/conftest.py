"""Shared fixtures: keys, landing zones and whole builds through Dagster."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from pipelines.settings import Settings
from pseudonymize import PseudonymKey, generate_secret_file, load_key_file
from tests.landing_writer import Landing
from tyokyky.run import run

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE_LANDING = FIXTURES / "sample_landing"
SAMPLE_EXPECTED = json.loads((FIXTURES / "sample_expected.json").read_text())
IMPACT_LANDING = FIXTURES / "impact_landing"  # the shared impact sample (800 persons), copied
IMPACT_EXPECTED = json.loads((FIXTURES / "impact_expected.json").read_text())


@pytest.fixture(autouse=True)
def _no_dagster_home(monkeypatch):
    """Each build uses its own DATA/.dagster instance, whatever the developer's shell says."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    for var in ("TYOKYKY_LANDING", "TYOKYKY_DATA", "TYOKYKY_KEY_FILE", "TYOKYKY_PARAMETERS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def session_key_file(tmp_path_factory) -> Path:
    return generate_secret_file(tmp_path_factory.mktemp("keys") / "test.key")


@pytest.fixture
def key_file(tmp_path) -> Path:
    return generate_secret_file(tmp_path / "keys" / "test.key")


@pytest.fixture
def key(key_file) -> PseudonymKey:
    return load_key_file(key_file)


@pytest.fixture
def landing(tmp_path) -> Landing:
    return Landing(tmp_path / "landing")


def build(landing_dir: Path, data_dir: Path, key_file: Path, **kw):
    """A whole build through Dagster, as `tyokyky run` does it."""
    return run(Settings(Path(landing_dir), Path(data_dir), Path(key_file), kw.get("parameters_file")),
               log=lambda *_: None)


def kb(data_dir: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(Settings(Path("."), Path(data_dir), None).kb_path), read_only=True)


def kb_fixture(build: str):
    """A test module's read-only connection to the knowledge base that a whole-build fixture made:
    ``con = kb_fixture("sample_build")``."""
    @pytest.fixture(scope="module")
    def con(request):
        c = kb(request.getfixturevalue(build)["data"])
        yield c
        c.close()
    return con


def rows(con, sql: str) -> list[dict]:
    rel = con.sql(sql)
    return [dict(zip(rel.columns, r)) for r in rel.fetchall()]


@pytest.fixture(scope="session")
def sample_build(tmp_path_factory, session_key_file):
    """The shared sample landing zone (a copy in tests/fixtures) built once through Dagster."""
    root = tmp_path_factory.mktemp("sample")
    landing_dir = root / "landing"
    shutil.copytree(SAMPLE_LANDING, landing_dir)
    data = root / "data"
    summary = build(landing_dir, data, session_key_file)
    return {"landing": landing_dir, "data": data, "summary": summary, "key_file": session_key_file}


@pytest.fixture(scope="session")
def impact_build(tmp_path_factory, session_key_file):
    """The impact sample landing zone built once through Dagster."""
    root = tmp_path_factory.mktemp("impact")
    shutil.copytree(IMPACT_LANDING, root / "landing")
    summary = build(root / "landing", root / "data", session_key_file)
    return {"landing": root / "landing", "data": root / "data", "summary": summary, "key_file": session_key_file}


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory, session_key_file):
    """A synthetic landing zone (the generator, 400 persons) built once through Dagster."""
    from pipelines.synth import write_landing_zone

    root = tmp_path_factory.mktemp("demo")
    write_landing_zone(root / "landing", persons=400, seed=7)
    data = root / "data"
    summary = build(root / "landing", data, session_key_file)
    return {"landing": root / "landing", "data": data, "summary": summary, "key_file": session_key_file}


os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
