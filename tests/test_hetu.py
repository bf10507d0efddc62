"""Identity-code validation and pseudonyms (python-stdnum's vectors and properties)."""
import hmac
import pickle
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.exceptions import ValidationError
from stdnum.fi import hetu as stdnum_hetu

from pseudonymize import PseudonymKey, PseudonymMemo, check, pseudonymize_column
from pseudonymize.hetu import CENTURY_SIGNS, CHECK_CHARACTERS, invalid_reason, normalize

KEY = PseudonymKey(b"k" * 32)


@pytest.mark.parametrize("raw", ["131052-308T", "131052a308t", " 131052-308T ", "131052B308T", "131052X308T",
                                 "131052Y308T", "131052U308T", "131052F308T", "131052+308T"])
def test_valid_codes(raw):
    info = check(raw)
    assert info.code == raw.strip().upper()
    assert info.birth_year == CENTURY_SIGNS[info.code[6]] + 52
    assert not info.temporary


@pytest.mark.parametrize("raw, reason", [
    ("131052-308U", "bad check character"),
    ("131052/308T", "unknown century sign"),
    ("310252-308Y", "impossible date"),
    ("130052-308R", "impossible date"),
    ("131052-000V", "reserved individual number"),
    ("131052-001W", "reserved individual number"),
    ("131052-308", "bad length"),
    ("131052-308TT", "bad length"),
    ("13105x-308T", "bad characters"),
    ("", "missing identity code"),
    (None, "missing identity code"),
])
def test_invalid_codes_have_reasons(raw, reason):
    with pytest.raises(ValueError) as e:
        check(raw)
    assert str(e.value) == reason
    assert raw is None or raw == "" or raw.strip() not in str(e.value)  # the code is never in the message


def test_temporary_code_is_kept_and_flagged():
    info = check("131052-9993")
    assert info.temporary and info.birth_year == 1952 and info.sex == "M"


def test_sex_from_parity():
    assert check("131052-308T").sex == "F"  # 308 even
    odd = f"131052-309{CHECK_CHARACTERS[131052309 % 31]}"
    assert check(odd).sex == "M"


def test_codes_differing_only_in_century_sign_get_different_pseudonyms():
    a, b = KEY.pseudonym("131052-308T"), KEY.pseudonym("131052A308T")
    assert a != b and len(a) == 64 and int(a, 16) >= 0


def test_pseudonym_is_hmac_sha256_and_deterministic():
    again = PseudonymKey(b"k" * 32)
    assert KEY.pseudonym("131052-308T") == again.pseudonym("131052-308T")
    derived = KEY._key
    assert KEY.pseudonym("131052-308T") == hmac.new(derived, b"131052-308T", "sha256").hexdigest()


def test_key_change_changes_every_pseudonym():
    codes = [f"0101{y:02d}-{n:03d}{CHECK_CHARACTERS[int(f'0101{y:02d}{n:03d}') % 31]}"
             for y in range(50, 60) for n in range(2, 30)]
    a = pseudonymize_column(codes, KEY).column("pseudonym").to_pylist()
    b = pseudonymize_column(codes, PseudonymKey(b"j" * 32)).column("pseudonym").to_pylist()
    assert all(x != y for x, y in zip(a, b))
    assert len(set(a)) == len(codes)


def test_vectorised_column_matches_scalar_and_normalises():
    raw = ["131052-308T", " 131052a308t ", "131052-308U", None, "131052-9993", "131052-308t"]
    t = pseudonymize_column(raw, KEY).to_pylist()
    assert t[0]["pseudonym"] == KEY.pseudonym("131052-308T") == t[5]["pseudonym"]
    assert t[1]["pseudonym"] == KEY.pseudonym("131052A308T")
    assert t[2] == {"pseudonym": None, "birth_year": None, "sex": None, "temporary_id": None,
                    "id_error": "bad check character"}
    assert t[3]["id_error"] == "missing identity code"
    assert t[4]["temporary_id"] is True and t[4]["sex"] == "M" and t[4]["birth_year"] == 1952
    assert t[0]["sex"] == "F" and t[0]["birth_year"] == 1952 and t[0]["temporary_id"] is False


@st.composite
def valid_codes(draw):
    sign = draw(st.sampled_from(sorted(CENTURY_SIGNS)))
    year = CENTURY_SIGNS[sign] + draw(st.integers(0, 99))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, 28 if month == 2 else 30))
    ind = draw(st.integers(2, 999))
    digits = f"{day:02d}{month:02d}{year % 100:02d}{ind:03d}"
    return f"{digits[:6]}{sign}{digits[6:]}{CHECK_CHARACTERS[int(digits) % 31]}"


@settings(max_examples=300, deadline=None)
@given(valid_codes())
def test_generated_valid_codes_agree_with_stdnum(code):
    assert stdnum_hetu.validate(code, allow_temporary=True) == code
    row = pseudonymize_column([code], KEY).to_pylist()[0]
    assert row["id_error"] is None and row["pseudonym"] == KEY.pseudonym(code)
    assert row["birth_year"] == CENTURY_SIGNS[code[6]] + int(code[4:6])
    assert row["sex"] == ("M" if int(code[7:10]) % 2 else "F")


code_like = st.text(alphabet="0123456789-+ABCDEFUVWXYQ/ a", min_size=0, max_size=13)


@settings(max_examples=500, deadline=None)
@given(st.one_of(code_like, valid_codes().map(lambda c: c[:10] + "0")))
def test_vectorised_reasons_equal_scalar_and_stdnum_validity(raw):
    row = pseudonymize_column([raw], KEY).to_pylist()[0]
    assert row["id_error"] == invalid_reason(normalize(raw))
    try:
        stdnum_hetu.validate(normalize(raw), allow_temporary=True)
        stdnum_ok = True
    except (ValidationError, Exception):
        stdnum_ok = False
    assert (row["id_error"] is None) == stdnum_ok


def _valid_codes(n: int, start: int = 2) -> list[str]:
    out = []
    for i in range(start, start + n):
        yy, nnn = 50 + i // 900, 2 + i % 900
        digits = f"0101{yy:02d}{nnn:03d}"
        out.append(f"0101{yy:02d}{'-A'[i % 2]}{nnn:03d}{CHECK_CHARACTERS[int(digits) % 31]}")
    return out


def test_memo_gives_the_same_pseudonyms_and_hashes_each_code_once():
    """Across deliveries of one build a memo looks codes up instead of hashing them again;
    the century sign is part of the code (A and - differ), invalid codes stay unhashed."""
    first = _valid_codes(3000) + ["131052-308U", None, " 131052a308t "]
    second = _valid_codes(4000, start=1500) + ["131052-308T", "xx"]
    random.Random(7).shuffle(second)  # looked up in sorted order, given in any order
    memo = PseudonymMemo()
    with_memo = [pseudonymize_column(c, KEY, memo).to_pylist() for c in (first, second, first)]
    without = [pseudonymize_column(c, KEY).to_pylist() for c in (first, second, first)]
    assert with_memo == without
    distinct_valid = set(_valid_codes(3000)) | set(_valid_codes(4000, start=1500)) | {"131052A308T", "131052-308T"}
    assert memo.hashed == len(memo) == len(distinct_valid) == 5500
    assert with_memo[0][-1]["pseudonym"] == KEY.pseudonym("131052A308T") != KEY.pseudonym("131052-308T")
    with pytest.raises(ValueError, match="one key"):
        pseudonymize_column(first, PseudonymKey(b"j" * 32), memo)
    with pytest.raises(TypeError):
        pickle.dumps(memo)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(code_like, valid_codes(), valid_codes().map(lambda c: c[:10] + "0")), min_size=2, max_size=80))
def test_a_column_of_mixed_codes_is_checked_as_each_code_alone(raws):
    """The checks run on a whole column at once (one row per character position): each row's
    result is what the code gets alone, and its reason is the scalar one."""
    rows = pseudonymize_column(raws, KEY).to_pylist()
    assert rows == [pseudonymize_column([raw], KEY).to_pylist()[0] for raw in raws]
    assert [r["id_error"] for r in rows] == [invalid_reason(normalize(raw)) for raw in raws]
