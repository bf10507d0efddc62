"""Vectorised pseudonymisation of a whole column of raw identity codes.

Normalisation and validation run on Arrow/NumPy arrays; HMAC runs once per
*distinct* valid code (a pre-keyed state copied per code), then the results are
spread back to the rows with one ``take``. A :class:`PseudonymMemo` carries the
pseudonyms across the deliveries of one build, so a person who is in 36 monthly
files is hashed once, not 36 times. Per-code Python calls to stdnum reach
only ~0.2 M codes/s, so the checks are expressed here in NumPy; tests hold them
equal to :func:`pseudonymize.hetu.invalid_reason` (python-stdnum) code for code.
"""
from __future__ import annotations

import binascii

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pseudonymize import hetu
from pseudonymize.keys import PseudonymKey

RESULT_SCHEMA = pa.schema([
    ("pseudonym", pa.string()),
    ("birth_year", pa.int16()),
    ("sex", pa.string()),
    ("temporary_id", pa.bool_()),
    ("id_error", pa.string()),
])

_REASONS = [None, hetu.MISSING, hetu.BAD_LENGTH, hetu.BAD_CHARACTERS, hetu.UNKNOWN_CENTURY,
            hetu.IMPOSSIBLE_DATE, hetu.RESERVED, hetu.BAD_CHECK]
_R = {r: i for i, r in enumerate(_REASONS)}

_CENTURY = np.zeros(256, dtype=np.int32)  # 0 = unknown sign
for _sign, _base in hetu.CENTURY_SIGNS.items():
    _CENTURY[ord(_sign)] = _base
_CHECK = np.frombuffer(hetu.CHECK_CHARACTERS.encode(), dtype=np.uint8)
_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int32)
_SIGN_INDEX = np.zeros(256, dtype=np.int64)  # century sign -> 0..12 (its part of a code's integer form)
for _i, _sign in enumerate(sorted(hetu.CENTURY_SIGNS)):
    _SIGN_INDEX[ord(_sign)] = _i


def _as_string_array(codes) -> pa.Array:
    if isinstance(codes, pd.Series):
        codes = pa.array(codes.astype(object).where(codes.notna(), None), type=pa.string())
    elif isinstance(codes, pa.ChunkedArray):
        codes = codes.combine_chunks()
    elif not isinstance(codes, pa.Array):
        codes = pa.array(codes, type=pa.string())
    if codes.type != pa.string():
        codes = codes.cast(pa.string())
    return codes


def _fixed_bytes(arr: pa.Array) -> np.ndarray:
    """An (n, 11) uint8 view of a string array whose values are all 11 bytes."""
    arr = pa.concat_arrays([arr])  # fresh buffers, offset 0
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1)
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    return data.reshape(-1, 11)


def _check_fixed(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reason codes, birth years, individual numbers and integer forms for 11-byte codes.

    The integer form (date digits, century sign, individual number) is one-to-one on valid
    codes, whose check character follows from the rest: it indexes the memo. Worked on one
    contiguous row per character position in 16 bits (strided int32 columns took 3x as long)."""
    n = len(b)
    t = np.ascontiguousarray(b.T)  # (11, n)
    d = t.astype(np.int16)
    d -= ord("0")
    is_digit = np.ones(n, dtype=bool)
    for position in (0, 1, 2, 3, 4, 5, 7, 8, 9):
        is_digit &= (t[position] >= ord("0")) & (t[position] <= ord("9"))
    reason = np.where(is_digit, 0, _R[hetu.BAD_CHARACTERS]).astype(np.int8)
    base = _CENTURY[t[6]]
    reason[(reason == 0) & (base == 0)] = _R[hetu.UNKNOWN_CENTURY]
    day = d[0] * 10 + d[1]
    month = d[2] * 10 + d[3]
    yy = d[4] * 10 + d[5]
    year = base + yy
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    ok_month = (month >= 1) & (month <= 12)
    dim = _DAYS[np.where(ok_month, month, 0)] + ((month == 2) & leap)
    bad_date = ~ok_month | (day < 1) | (day > dim)
    reason[(reason == 0) & bad_date] = _R[hetu.IMPOSSIBLE_DATE]
    individual = (d[7] * 100 + d[8] * 10 + d[9]).astype(np.int32)
    reason[(reason == 0) & (individual < 2)] = _R[hetu.RESERVED]
    day, month, yy = day.astype(np.int64), month.astype(np.int64), yy.astype(np.int64)
    number = day * 10_000_000 + month * 100_000 + yy * 1000 + individual
    expected = _CHECK[np.clip(number % 31, 0, 30)]
    reason[(reason == 0) & (expected != t[10])] = _R[hetu.BAD_CHECK]
    number = (((day * 100 + month) * 100 + yy) * 16 + _SIGN_INDEX[t[6]]) * 1000 + individual
    return reason, year, individual, number


def _hex_rows(digests: bytes) -> np.ndarray:
    """Concatenated 32-byte digests as an (n, 64) array of lowercase hex characters
    (``binascii.hexlify`` gives bytes in one step: faster than NumPy lookups or ``bytes.hex``)."""
    return np.frombuffer(binascii.hexlify(digests), dtype=np.uint8).reshape(-1, 64)


def _string_array(hex_rows: np.ndarray) -> pa.Array:
    n = len(hex_rows)
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * 64).tobytes())
    return pa.StringArray.from_buffers(n, offsets, pa.py_buffer(np.ascontiguousarray(hex_rows).tobytes()))


class PseudonymMemo:
    """The pseudonyms computed so far in this process, by the code's integer form.

    Held in memory only, for one staging step (one build), and dropped with it; it never
    holds a code as text and is never written. Sorted runs of keys with their hex
    pseudonyms, merged as they grow (as in a log-structured merge), so that a lookup
    is a few binary searches and an insert never re-sorts everything."""

    __slots__ = ("_runs", "_lock", "_fingerprint", "hashed")

    def __init__(self):
        import threading

        self._runs: list[tuple[np.ndarray, np.ndarray]] = []
        self._lock = threading.Lock()  # deliveries stage in threads
        self._fingerprint: str | None = None  # a memo serves one key only
        self.hashed = 0               # distinct codes hashed: each once per memo

    def __len__(self) -> int:
        return sum(len(k) for k, _ in self._runs)

    def __reduce__(self):  # like the key: never into Dagster storage or IO managers
        raise TypeError("PseudonymMemo must not be pickled")

    def pseudonyms(self, key: PseudonymKey, numbers: np.ndarray, codes: pa.Array) -> np.ndarray:
        """(n, 64) hex pseudonyms of distinct valid codes given with their integer forms."""
        out = np.empty((len(numbers), 64), dtype=np.uint8)
        with self._lock:
            if self._fingerprint not in (None, key.fingerprint):
                raise ValueError("a pseudonym memo serves one key: make a new one for another key")
            self._fingerprint = key.fingerprint
            # searched in sorted order: each binary search starts where the last ended, so a
            # million lookups in a million-code memo touch memory in order (4x faster than as given)
            order = np.argsort(numbers, kind="stable")
            wanted = numbers[order]
            seen = np.zeros(len(numbers), dtype=bool)  # in sorted order
            for keys, hexes in self._runs:
                pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
                hit = ~seen & (keys[pos] == wanted)
                out[order[hit]] = hexes[pos[hit]]
                seen |= hit
            missing = np.sort(order[~seen])
            if len(missing):
                new = _hex_rows(_digests(key, codes.take(pa.array(missing))))
                out[missing] = new
                self.hashed += len(missing)
                self._add(numbers[missing], new)
        return out

    def _add(self, numbers: np.ndarray, hexes: np.ndarray) -> None:
        order = np.argsort(numbers, kind="stable")
        self._runs.append((numbers[order], hexes[order]))
        while len(self._runs) > 1 and len(self._runs[-1][0]) * 2 >= len(self._runs[-2][0]):
            (k2, h2), (k1, h1) = self._runs.pop(), self._runs.pop()
            keys = np.concatenate([k1, k2])
            order = np.argsort(keys, kind="stable")
            self._runs.append((keys[order], np.concatenate([h1, h2])[order]))


def _decode(codes: np.ndarray, labels: dict[int, str | None]) -> pa.Array:
    """Small-integer codes to strings through an Arrow dictionary (no Python objects per row)."""
    keys = sorted(labels)
    dictionary = pa.array([labels[k] or "" for k in keys], pa.string())
    position = np.searchsorted(keys, codes)
    null = np.array([labels.get(k) is None for k in keys])[np.clip(position, 0, len(keys) - 1)]
    null |= ~np.isin(codes, keys)
    indices = pa.array(np.clip(position, 0, len(keys) - 1).astype(np.int32), mask=null)
    return pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string())


def _digests(key: PseudonymKey, codes: pa.Array) -> bytes:
    """Concatenated HMAC-SHA256 digests of (distinct, valid) codes, from pre-keyed states."""
    inner0, outer0 = key.hash_states()
    inner_copy, outer_copy = inner0.copy, outer0.copy

    def one(code: bytes) -> bytes:
        inner = inner_copy()
        inner.update(code)
        outer = outer_copy()
        outer.update(inner.digest())
        return outer.digest()

    return b"".join(map(one, codes.cast(pa.binary()).to_pylist()))


def _distinct_normalized(codes) -> tuple[pa.Array, pa.Array]:
    """Distinct normalised codes (stripped, upper-cased) and each row's index into them (null for null)."""
    encoded = pc.utf8_upper(pc.utf8_trim_whitespace(_as_string_array(codes))).dictionary_encode()
    return encoded.dictionary, encoded.indices


def _classify(distinct: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reason code (index into REASONS, 0 = valid), birth year, individual number and integer
    form (the memo's index) per distinct code."""
    m = len(distinct)
    reason = np.full(m, _R[hetu.BAD_LENGTH], dtype=np.int8)
    year = np.zeros(m, dtype=np.int16)
    individual = np.zeros(m, dtype=np.int32)
    number = np.zeros(m, dtype=np.int64)
    lengths = pc.binary_length(distinct).to_numpy(zero_copy_only=False)
    reason[lengths == 0] = _R[hetu.MISSING]
    eleven = np.flatnonzero(lengths == 11)
    if len(eleven):
        r, y, ind, num = _check_fixed(_fixed_bytes(distinct if len(eleven) == m else distinct.take(pa.array(eleven))))
        reason[eleven], year[eleven], individual[eleven], number[eleven] = r, y, ind, num
    return reason, year, individual, number


#: reasons of :func:`check_column`, by code (0 = valid)
REASONS = tuple(_REASONS)


def check_column(codes) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """Normalise and check a column without hashing it (the partner side of sealing):
    ``(distinct normalised codes, each row's index into them or null, reason code per distinct)``."""
    distinct, indices = _distinct_normalized(codes)
    return distinct, indices, _classify(distinct)[0]


def pseudonymize_column(codes, key: PseudonymKey, memo: PseudonymMemo | None = None) -> pa.Table:
    """Pseudonym, birth year, sex, temporary flag and error reason for each raw code.

    ``codes`` is an Arrow array / chunked array, a pandas Series or a list of raw
    codes (nulls allowed). Row *i* of the result belongs to code *i*. Invalid codes
    get ``id_error`` and null elsewhere; they are never hashed. With a ``memo`` (one per
    build), a code already hashed in this build is looked up instead of hashed again.
    """
    distinct, indices = _distinct_normalized(codes)
    m = len(distinct)
    reason, year, individual, number = _classify(distinct)
    valid = reason == 0
    valid_idx = np.flatnonzero(valid)
    valid_codes = distinct if len(valid_idx) == m else distinct.take(pa.array(valid_idx))
    if memo is not None:
        hashed = _string_array(memo.pseudonyms(key, number[valid_idx], valid_codes))
    else:
        hashed = _string_array(_hex_rows(_digests(key, valid_codes)))
    if len(valid_idx) == m:  # the common case: skip the spread-back take
        pseudonym_col = hashed
    else:
        positions = np.zeros(m, dtype=np.int64)
        positions[valid_idx] = np.arange(len(valid_idx))
        pseudonym_col = hashed.take(pa.array(positions, mask=~valid))  # null where invalid

    # Per-distinct columns, then one take to spread them back to rows.
    sex_code = np.where(valid, individual % 2, -1)  # 1 = M, 0 = F
    by_distinct = pa.table({
        "pseudonym": pseudonym_col,
        "birth_year": pa.array(year, type=pa.int16(), mask=~valid),
        "sex": _decode(sex_code, {1: "M", 0: "F"}),
        "temporary_id": pa.array(individual >= 900, type=pa.bool_(), mask=~valid),
        "id_error": _decode(reason.astype(np.int32), dict(enumerate(_REASONS))),
    }, schema=RESULT_SCHEMA)
    # Null raw codes have a null index: point them at a "missing" row appended at the end.
    missing_row = pa.table({
        "pseudonym": pa.array([None], pa.string()), "birth_year": pa.array([None], pa.int16()),
        "sex": pa.array([None], pa.string()), "temporary_id": pa.array([None], pa.bool_()),
        "id_error": pa.array([hetu.MISSING], pa.string()),
    }, schema=RESULT_SCHEMA)
    by_distinct = pa.concat_tables([by_distinct, missing_row]).combine_chunks()
    take_idx = pc.fill_null(indices, m)
    return by_distinct.take(take_idx)
