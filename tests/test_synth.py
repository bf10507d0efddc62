"""The synthetic landing zone: deterministic, in the partners' exact formats, readable."""
import hashlib
from pathlib import Path

import pytest

from pipelines import landing as landing_zone
from pipelines.synth import write_landing_zone
from schemas import load_contracts
from schemas.readers import read_delivery
from tests.conftest import SAMPLE_LANDING

C = load_contracts()


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "landing"
    stats = write_landing_zone(out, persons=300, seed=3)
    return out, stats


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes() if f.suffix != ".xlsx" else b"")  # xlsx zips carry timestamps
    return h.hexdigest()


def test_deterministic_for_a_seed(synth, tmp_path):
    out, _ = synth
    write_landing_zone(tmp_path / "again", persons=300, seed=3)
    write_landing_zone(tmp_path / "other", persons=300, seed=4)
    assert digest(out) == digest(tmp_path / "again") != digest(tmp_path / "other")


def test_every_partner_and_format_matches_the_samples(synth):
    out, _ = synth
    deliveries, warnings = landing_zone.scan(out, C)
    assert not warnings and not [d for d in deliveries if d.problem]
    assert {d.partner for d in deliveries} == set(C)
    for partner in C:
        ours = next(d for d in deliveries if d.partner == partner).file
        theirs = next((SAMPLE_LANDING / partner).rglob("*.*"))
        assert C[partner].file_name_regex().match(ours.name) and C[partner].file_name_regex().match(theirs.name)
        if ours.suffix in (".csv", ".txt"):
            a, b = ours.read_bytes(), theirs.read_bytes()
            assert a.startswith(b"\xef\xbb\xbf") == b.startswith(b"\xef\xbb\xbf"), partner
            assert a.splitlines()[0].split(b";")[0] == b.splitlines()[0].split(b";")[0] or partner == "kela"
            assert (b"\r\n" in a) == (b"\r\n" in b), partner
            if partner != "kela":
                assert a.splitlines()[0] == b.splitlines()[0], partner


def test_read_back_by_the_readers_with_only_the_intended_messiness(synth, tmp_path):
    """Every file loads; the only row errors are the invalid codes the generator plants."""
    import pyarrow.parquet as pq

    from pipelines import staging
    from pseudonymize import PseudonymKey

    out, stats = synth
    key = PseudonymKey(b"s" * 32)
    deliveries, _ = landing_zone.scan(out, C)
    rows = 0
    reasons = set()
    for d in deliveries:
        result = read_delivery(C[d.partner], d.file, d.period)
        assert not result.row_errors
        rows += result.rows_read
        a = staging.stage_delivery(tmp_path / "staging", d, C[d.partner], key)
        assert a.status == "loaded"
        q = pq.read_table(tmp_path / "staging" / d.partner / d.period / "quarantine.parquet").to_pylist()
        reasons |= {r["reason"].split(":")[1].strip() for r in q}
    assert rows == stats["rows"]
    assert reasons <= {"bad check character", "unknown century sign", "impossible date"}
    assert reasons  # some invalid codes were planted


def test_messiness_is_present(synth):
    out, _ = synth
    ttk = b"".join(f.read_bytes() for f in (out / "ttk").rglob("*.csv")).decode("utf-8-sig", "replace")
    assert ";91;" in ttk or ";92;" in ttk  # municipality codes without leading zeros
    te = b"".join(f.read_bytes() for f in (out / "te").rglob("*.csv")).decode("latin-1")
    assert "Järvenpää" in te or "Mäntsälä" in te
    codes = [line.split(";")[0] for line in te.splitlines() if line and not line.startswith("HETU")]
    assert any(c != c.strip() or c != c.upper() for c in codes)  # sloppy codes
    typed_dates = 0
    import openpyxl
    for f in (out / "valmennus").rglob("*.xlsx"):
        for row in openpyxl.load_workbook(f, read_only=True)["Asiakkaat"].iter_rows(min_row=2, values_only=True):
            typed_dates += isinstance(row[1], str)
    assert typed_dates > 0
