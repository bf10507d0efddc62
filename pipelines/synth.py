"""A synthetic landing zone that follows the partner spec, messiness included.

Simulates a region's population over 2019–2022 — TE status spells, Kela benefits with
municipal shares, referrals to TTK, IPS coaching with placements, TYP, municipal
services, measurements and consents — as typed values. How a partner writes them (file
names, headers, delimiters, quoting, encodings, date and number formats, fixed-width
positions, header and trailer records, JSON keys, the sheet) comes from its contract
(:mod:`schemas.rendering`, :mod:`schemas.writers`). What is simulated here is only the
partners' messiness beyond their format: sloppy and invalid identity codes, municipality
codes without leading zeros, spreadsheet dates typed as text.

Everything but the spreadsheet is vectorised (NumPy arrays, Arrow string kernels), so a
million persons take minutes. Every identity code is synthetic (valid check character,
random birth date): no real person.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pseudonymize.hetu import CHECK_CHARACTERS
from schemas import load_contracts
from schemas.rendering import render
from schemas.writers import write_file

START = np.datetime64("2019-01-01")
END = np.datetime64("2022-12-31")
FIRST_DELIVERY = np.datetime64("2020-01", "M")
LAST_DELIVERY = np.datetime64("2022-12", "M")
MUNICIPALITIES = {  # Keski-Uusimaa, South Karelia, Rovaniemi–Kemijärvi and neighbours
    "186": "Järvenpää", "245": "Kerava", "505": "Mäntsälä", "543": "Nurmijärvi", "611": "Pornainen",
    "858": "Tuusula", "405": "Lappeenranta", "153": "Imatra", "698": "Rovaniemi", "320": "Kemijärvi",
    "092": "Vantaa", "091": "Helsinki",
}
TE_STATUSES = np.array(["01", "02", "03", "10", "11", "12", "13", "14", "15"])


# ---------------------------------------------------------------- small vectorised helpers
def _s(values) -> pa.Array:
    return pa.array(values, pa.string()) if not isinstance(values, pa.Array) else values


def join(*parts, sep: str = "") -> pa.Array:
    """Element-wise concatenation of string arrays and scalars (nulls become '')."""
    arrays = [p if isinstance(p, (pa.Array, pa.ChunkedArray)) else pa.scalar(str(p)) for p in parts]
    arrays = [pc.fill_null(a, "") if isinstance(a, (pa.Array, pa.ChunkedArray)) else a for a in arrays]
    return pc.binary_join_element_wise(*arrays, sep)


def _index_of(values: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Position of each item in ``values`` (all items are present)."""
    order = np.argsort(values)
    return order[np.searchsorted(values, items, sorter=order)]


def month_of(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[M]")


def delivery_month(created: np.ndarray) -> np.ndarray:
    """Records created before the first delivery arrive in it; later ones in their month."""
    return np.maximum(month_of(created), FIRST_DELIVERY)


# ---------------------------------------------------------------- persons
def make_codes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n distinct valid identity codes, their birth dates and individual numbers."""
    births = np.array([], dtype="datetime64[D]")
    codes = np.array([], dtype="U11")
    individuals = np.array([], dtype=np.int64)
    while len(codes) < n:
        m = int((n - len(codes)) * 1.05) + 10
        b = np.datetime64("1957-01-01") + rng.integers(0, 365 * 47, m).astype("timedelta64[D]")
        ind = rng.integers(2, 900, m)
        ind[rng.random(m) < 0.004] = rng.integers(900, 1000)  # a few temporary codes
        y = b.astype("datetime64[Y]").astype(int) + 1970
        mo = b.astype("datetime64[M]").astype(int) % 12 + 1
        d = (b - b.astype("datetime64[M]").astype("datetime64[D]")).astype(int) + 1
        yy = y % 100
        century = np.where(y >= 2000, "A", "-")
        new_signs = rng.random(m) < 0.03  # the 2023 century signs, in use since
        century = np.where(new_signs, np.where(y >= 2000, "B", "Y"), century)
        number = d * 10_000_000 + mo * 100_000 + yy * 1000 + ind
        check = np.array(list(CHECK_CHARACTERS))[number % 31]
        c = np.char.add(np.char.add(np.char.add(np.char.zfill(d.astype(str), 2), np.char.zfill(mo.astype(str), 2)),
                                    np.char.zfill(yy.astype(str), 2)), century)
        c = np.char.add(np.char.add(c, np.char.zfill(ind.astype(str), 3)), check)
        codes = np.concatenate([codes, c])
        births = np.concatenate([births, b])
        individuals = np.concatenate([individuals, ind])
        codes, first = np.unique(codes, return_index=True)
        births, individuals = births[first], individuals[first]
    order = rng.permutation(len(codes))[:n]
    return codes[order], births[order], individuals[order]


def sloppy(rng: np.random.Generator, codes: pa.Array, share: float = 0.02) -> pa.Array:
    """Partners' sloppiness: some codes lowercase or padded with spaces (still valid)."""
    r = rng.random(len(codes))
    lower = pa.array(r < share / 2)
    padded = pa.array((r >= share / 2) & (r < share))
    out = pc.if_else(lower, pc.utf8_lower(codes), codes)
    return pc.if_else(padded, join(" ", out, " "), out)


def corrupt(rng: np.random.Generator, codes: pa.Array, share: float) -> pa.Array:
    """Some rows get an invalid code: a wrong check character, an unknown sign, an impossible date."""
    n = len(codes)
    r = rng.random(n)
    kind = rng.integers(0, 3, n)
    bad_check = join(pc.utf8_slice_codeunits(codes, 0, 10), "0")
    bad_sign = join(pc.utf8_slice_codeunits(codes, 0, 6), "Q", pc.utf8_slice_codeunits(codes, 7, 11))
    bad_date = join("3", pc.utf8_slice_codeunits(codes, 1, 2), "13", pc.utf8_slice_codeunits(codes, 4, 11))
    # a check character that happens to be right ('0') stays valid: it is then not corrupted
    replaced = pc.if_else(pa.array(kind == 0), bad_check, pc.if_else(pa.array(kind == 1), bad_sign, bad_date))
    return pc.if_else(pa.array(r < share), replaced, codes)


# ---------------------------------------------------------------- writing
def _deliver(out: Path, partner: str, when: np.ndarray, codes, values: dict, stats: dict,
             typed_as_text: np.ndarray | None = None) -> None:
    """Write ``partner``'s records (identity ``codes`` and typed ``values`` by stored column
    name) as one delivery per month of ``when``, as its contract describes the files."""
    if len(when) == 0:
        return
    contract = load_contracts()[partner]
    order = np.argsort(when, kind="stable")
    when = when[order]
    table = render(contract, _s(codes).take(pa.array(order)), {k: _take(v, order) for k, v in values.items()},
                   typed=contract.format == "xlsx")  # a spreadsheet keeps Excel date and number cells
    as_text = None if typed_as_text is None else typed_as_text[order]
    months, starts = np.unique(when, return_index=True)
    ends = np.append(starts[1:], len(when))
    for month, a, b in zip(months, starts, ends):
        label = str(month)  # YYYY-MM
        created = str((month + 1).astype("datetime64[D]") - 1).replace("-", "")  # the month's last day
        flags = None if as_text is None else pa.array(as_text[a:b])
        write_file(contract, table.slice(a, b - a), out / partner / label, label, created, flags)
    stats["files"] += len(months)
    stats["rows"] += len(when)


def _take(values, order: np.ndarray):
    return values.take(pa.array(order)) if isinstance(values, (pa.Array, pa.ChunkedArray)) else np.asarray(values)[order]


def _updates(created: np.ndarray, ended: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Versions of records: (row index, delivery month). A record is delivered when created,
    and again, with its end filled in, in the month it ended (if later and delivered)."""
    first = delivery_month(created)
    end_month = np.where(np.isnat(ended), LAST_DELIVERY + 1, month_of(np.where(np.isnat(ended), END, ended)))
    again = (end_month > first) & (end_month <= LAST_DELIVERY)
    idx = np.concatenate([np.arange(len(created)), np.flatnonzero(again)])
    when = np.concatenate([first, end_month[again]])
    final = np.concatenate([~again, np.ones(again.sum(), bool)])  # the version that carries the end
    return idx, when, final


# ---------------------------------------------------------------- the simulation
def write_landing_zone(out: Path, persons: int = 2000, seed: int = 1,
                       municipalities: dict[str, float] | None = None) -> dict:
    """``municipalities``: home municipality code → weight (a region's members and a few outside:
    people move); by default a dozen of the three regions and their neighbours, equally likely."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = persons
    codes_np, births, individuals = make_codes(rng, n)
    codes = pa.array(codes_np.tolist(), pa.string())
    names_of = MUNICIPALITIES if municipalities is None else _names(municipalities)
    mun_codes = np.array(list(names_of))
    if municipalities is None:
        home = mun_codes[rng.integers(0, len(mun_codes), n)]
    else:
        weights = np.array([municipalities[c] for c in mun_codes], float)
        home = mun_codes[rng.choice(len(mun_codes), n, p=weights / weights.sum())]
    stats = {"files": 0, "rows": 0}

    # programme: referrals to TTK in 2021–2022 for ~15 %, coaching for some of them
    programme = rng.random(n) < 0.15
    p_idx = np.flatnonzero(programme)
    referral = np.datetime64("2021-01-01") + rng.integers(0, 690, len(p_idx)).astype("timedelta64[D]")
    ttk_start = referral + rng.integers(5, 90, len(p_idx)).astype("timedelta64[D]")
    started = ttk_start <= END  # a referral whose episode would start after 2022 is not a client yet
    p_idx, referral, ttk_start = p_idx[started], referral[started], ttk_start[started]
    ttk_end = ttk_start + rng.integers(40, 320, len(p_idx)).astype("timedelta64[D]")
    ttk_end = np.where(ttk_end > END, np.datetime64("NaT"), ttk_end)
    index_date = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    index_date[p_idx] = ttk_start

    # ---- TE status spells, 2019 → 2022; after the index date employment is likelier
    k = 10
    durations = rng.exponential(150, (n, k)).astype(int) + 14
    starts = START + np.concatenate([np.zeros((n, 1), int), np.cumsum(durations, axis=1)[:, :-1]], axis=1)
    starts = starts.astype("datetime64[D]")
    ends = starts + (durations - 1).astype("timedelta64[D]")
    after = ~np.isnat(index_date)[:, None] & (starts >= index_date[:, None])
    u = rng.random((n, k))
    base = np.select([u < 0.55, u < 0.60, u < 0.62, u < 0.67, u < 0.82, u < 0.90, u < 0.94, u < 0.97],
                     [0, 1, 2, 3, 4, 5, 6, 7], 8)
    boosted = np.select([u < 0.35, u < 0.45, u < 0.75, u < 0.88], [0, 3, 4, 5], 6)
    status = TE_STATUSES[np.where(after, boosted, base)]
    status[:, 0] = "01"  # long-term unemployed at the start
    keep = starts <= END
    ongoing = keep & (ends > END)
    person = np.repeat(np.arange(n), k).reshape(n, k)[keep]
    s_start, s_end, s_status = starts[keep], ends[keep], status[keep]
    s_end = np.where(ongoing[keep], np.datetime64("NaT"), s_end)
    overlap = rng.random(len(s_start)) < 0.01  # occasional overlapping spells
    shift = np.zeros(len(s_start), bool)
    shift[1:] = overlap[1:] & (person[1:] == person[:-1])
    s_start = np.where(shift, s_start - np.timedelta64(10, "D"), s_start)
    idx, when, final = _updates(s_start, s_end)
    te_codes = corrupt(rng, sloppy(rng, codes.take(pa.array(person[idx]))), 0.01)
    spell_end = np.where(final, s_end[idx], np.datetime64("NaT"))
    mun = home[person[idx]]
    names = np.array([names_of[m] for m in mun_codes])  # a dozen names, looked up by index
    _deliver(out, "te", when, te_codes, {"municipality": mun, "status": s_status[idx], "start_date": s_start[idx],
                                         "end_date": spell_end,
                                         "municipality_name": names[_index_of(mun_codes, mun)]}, stats)

    # ---- Kela: monthly TMTU while unemployed (status 01/02), TOTU for some
    months = np.arange(np.datetime64("2019-01", "M"), LAST_DELIVERY + 1)
    spell_months_start = month_of(s_start)
    spell_months_end = month_of(np.where(np.isnat(s_end), END, s_end))
    unemployed = np.isin(s_status, ["01", "02"])
    span = (spell_months_end - spell_months_start).astype(int) + 1
    rep = np.repeat(np.flatnonzero(unemployed), span[unemployed])
    offset = np.arange(len(rep)) - np.repeat(np.cumsum(span[unemployed]) - span[unemployed], span[unemployed])
    b_person = person[rep]
    b_month = spell_months_start[rep] + offset.astype("timedelta64[M]")
    # one payment per person and month
    key = b_person.astype(np.int64) * 1000 + (b_month - months[0]).astype(int)
    key, first = np.unique(key, return_index=True)
    b_person, b_month = b_person[first], b_month[first]
    days = rng.integers(15, 23, len(b_person))
    paid = days * rng.integers(3300, 3800, len(b_person))
    share = (paid * rng.choice([0.5, 0.7], len(b_person))).astype(np.int64)
    totu = rng.random(n) < 0.3
    t_rows = np.flatnonzero(totu[b_person] & (rng.random(len(b_person)) < 0.6))
    b_person = np.concatenate([b_person, b_person[t_rows]])
    b_month = np.concatenate([b_month, b_month[t_rows]])
    benefit = np.concatenate([np.full(len(paid), "TMTU"), np.full(len(t_rows), "TOTU")])
    tpaid = rng.integers(5000, 60000, len(t_rows))
    days = np.concatenate([days, np.zeros(len(t_rows), int)])
    share = np.concatenate([share, tpaid // 2])
    paid = np.concatenate([paid, tpaid])
    _deliver(out, "kela", delivery_month(b_month.astype("datetime64[D]")), codes.take(pa.array(b_person)),
             {"month": b_month, "benefit": benefit, "days": days, "paid_eur": paid,  # amounts in cents
              "municipal_share_eur": share}, stats)

    # ---- TTK episodes
    ttk_idx, ttk_when, ttk_final = _updates(ttk_start, ttk_end)
    end_r = np.array(["TYO", "KOULUTUS", "KUNTOUTUS", "ELAKE", "MUU_PALVELU", "KESKEYTYS", "MUU"])
    reasons = end_r[rng.integers(0, len(end_r), len(p_idx))]
    referrers = np.array(["TE", "TYP", "SOSIAALI", "TERVEYS", "KUNTA", "KELA", "OMA"])[rng.integers(0, 7, len(p_idx))]
    roles = np.array(["SOSIAALIOHJAAJA", "TERVEYDENHOITAJA", "TOIMINTATERAPEUTTI", "FYSIOTERAPEUTTI",
                      "LAAKARI"])[rng.integers(0, 5, len(p_idx))]
    end_v = np.where(ttk_final, ttk_end[ttk_idx], np.datetime64("NaT"))
    mun = home[p_idx[ttk_idx]]
    mun = np.where((rng.random(len(mun)) < 0.3), np.char.lstrip(mun.astype(str), "0"), mun)  # '91' for '091'
    _deliver(out, "ttk", ttk_when, corrupt(rng, sloppy(rng, codes.take(pa.array(p_idx[ttk_idx]))), 0.01),
             {"municipality": mun, "referral_source": referrers[ttk_idx], "referral_date": referral[ttk_idx],
              "start_date": ttk_start[ttk_idx], "end_date": end_v,
              "end_reason": pc.if_else(pa.array(np.isnat(end_v)), pa.scalar(None, pa.string()), _s(reasons[ttk_idx])),
              "worker_role": roles[ttk_idx]}, stats)

    # ---- measurements for TTK clients: ALKU near start, LOPPU near the end
    m_person, m_day, m_inst, m_phase, m_val = [], [], [], [], []
    ranges = {"TKI": (0, 10, 0), "WHODAS12": (0, 100, 1), "PHQ9": (0, 27, 0), "AUDIT": (0, 40, 0)}
    for inst, (lo, hi, dec) in ranges.items():
        has = rng.random(len(p_idx)) < (0.8 if inst == "TKI" else 0.5)
        base_v = rng.uniform(lo, hi, len(p_idx))
        for phase, day, ok in (("ALKU", ttk_start + 3, has),
                               ("LOPPU", np.where(np.isnat(ttk_end), ttk_start, ttk_end) - 2, has & ~np.isnat(ttk_end))):
            delta = 0 if phase == "ALKU" else rng.normal(0.1 * (hi - lo) * (1 if inst == "TKI" else -1), 0.1 * (hi - lo), len(p_idx))
            v = np.clip(np.round(base_v + delta, dec), lo, hi)
            m_person.append(p_idx[ok]); m_day.append(day[ok]); m_inst.append(np.full(ok.sum(), inst))
            m_phase.append(np.full(ok.sum(), phase)); m_val.append(v[ok])
    m_person, m_day = np.concatenate(m_person), np.concatenate(m_day)
    m_vals = np.concatenate(m_val)
    m_vals = np.where(np.isclose(m_vals, np.round(m_vals)), np.round(m_vals), np.round(m_vals, 1))
    _deliver(out, "mittarit", delivery_month(m_day), codes.take(pa.array(m_person)),
             {"measured_on": m_day, "instrument": np.concatenate(m_inst), "phase": np.concatenate(m_phase),
              "value": m_vals}, stats)

    # ---- IPS coaching for ~45 % of TTK clients, starting after TTK start
    coached = rng.random(len(p_idx)) < 0.45
    c_person = p_idx[coached]
    c_start = ttk_start[coached] + rng.integers(20, 200, coached.sum()).astype("timedelta64[D]")
    ok = c_start <= END
    c_person, c_start = c_person[ok], c_start[ok]
    c_end = c_start + rng.integers(60, 400, len(c_start)).astype("timedelta64[D]")
    c_end = np.where(c_end > END, np.datetime64("NaT"), c_end)
    placed = rng.random(len(c_start)) < 0.45
    placement = np.where(placed, c_start + rng.integers(10, 300, len(c_start)).astype("timedelta64[D]"), np.datetime64("NaT"))
    placement = np.where(placement > END, np.datetime64("NaT"), placement)
    ctype = np.array(["AVOIN", "PALKKATUKI", "OPPISOPIMUS", "TYOKOKEILU"])[rng.integers(0, 4, len(c_start))]
    hours = rng.choice([20.0, 30.0, 37.5], len(c_start))
    industry = np.array(list("ABCDEFGHIJKLMNOPQRSTU"))[rng.integers(0, 21, len(c_start))]
    v_idx, v_when, v_final = _updates(c_start, c_end)
    # a version shows the placement once it has happened by the end of its delivery month
    month_end = (v_when + 1).astype("datetime64[D]") - 1
    place = placement[v_idx]
    place = np.where(~np.isnat(place) & (place <= month_end), place, np.datetime64("NaT"))
    job = ~np.isnat(place)
    as_text = np.zeros(len(v_idx), bool)  # coaches type some rows' dates (and hours) as text
    for month in np.unique(v_when):
        rows = np.flatnonzero(v_when == month)
        as_text[rows] = rng.random(len(rows)) < 0.15
    _deliver(out, "valmennus", v_when, codes.take(pa.array(c_person[v_idx])),
             {"coaching_start": c_start[v_idx], "coaching_end": np.where(v_final, c_end[v_idx], np.datetime64("NaT")),
              "placement_date": place, "contract_type": _when(job, ctype[v_idx]),
              "hours_per_week": pa.array(hours[v_idx], mask=~job), "industry": _when(job, industry[v_idx])},
             stats, typed_as_text=as_text)

    # ---- TYP (JSON lines) and municipal services (quoted CSV)
    typ = rng.random(n) < 0.12
    t_person = np.flatnonzero(typ)
    t_start = START + rng.integers(-200, 1400, len(t_person)).astype("timedelta64[D]")
    t_end = t_start + rng.integers(60, 500, len(t_person)).astype("timedelta64[D]")
    t_end = np.where(t_end > END, np.datetime64("NaT"), t_end)
    ok = t_start <= END
    t_person, t_start, t_end = t_person[ok], t_start[ok], t_end[ok]
    i, when, final = _updates(t_start, t_end)
    end_v = np.where(final, t_end[i], np.datetime64("NaT"))
    plan = rng.random(len(i)) < 0.6
    _deliver(out, "typ", when, codes.take(pa.array(t_person[i])),
             {"municipality": home[t_person[i]], "start_date": t_start[i], "end_date": end_v,
              "multisector_plan": plan}, stats)

    services = np.array(["KUNTOUTTAVA_TYOTOIMINTA", "TYOKOKEILU", "PALKKATUKI", "TYOHONVALMENNUS", "KOULUTUS",
                         "SOSIAALINEN_KUNTOUTUS"])
    kpers = np.flatnonzero(rng.random(n) < 0.18)
    kpers = np.repeat(kpers, rng.integers(1, 4, len(kpers)))
    k_start = START + rng.integers(-100, 1450, len(kpers)).astype("timedelta64[D]")
    k_end = k_start + rng.integers(30, 300, len(kpers)).astype("timedelta64[D]")
    k_end = np.where(k_end > END, np.datetime64("NaT"), k_end)
    k_serv = services[rng.integers(0, len(services), len(kpers))]
    ok = k_start <= END
    kpers, k_start, k_end, k_serv = kpers[ok], k_start[ok], k_end[ok], k_serv[ok]
    uniq = np.unique(np.char.add(np.char.add(kpers.astype(str), k_serv), k_start.astype(str)), return_index=True)[1]
    kpers, k_start, k_end, k_serv = kpers[uniq], k_start[uniq], k_end[uniq], k_serv[uniq]
    i, when, final = _updates(k_start, k_end)
    end_v = np.where(final, k_end[i], np.datetime64("NaT"))
    _deliver(out, "kunta", when, corrupt(rng, codes.take(pa.array(kpers[i])), 0.02),
             {"municipality": home[kpers[i]], "service": k_serv[i], "start_date": k_start[i], "end_date": end_v},
             stats)

    # ---- consents: snapshots every half year; most programme clients consent, some withdraw,
    # some never answer (held back until they do)
    answered = rng.random(len(p_idx)) < 0.93
    given = referral + rng.integers(0, 60, len(p_idx)).astype("timedelta64[D]")
    withdrawn = np.where(answered & (rng.random(len(p_idx)) < 0.04),
                         given + rng.integers(30, 400, len(p_idx)).astype("timedelta64[D]"), np.datetime64("NaT"))
    for snapshot in ("2021-06", "2021-12", "2022-06", "2022-12"):
        cut = (np.datetime64(snapshot, "M") + 1).astype("datetime64[D]") - 1
        ok = answered & (given <= cut)
        w = np.where(withdrawn <= cut, withdrawn, np.datetime64("NaT"))[ok]
        _deliver(out, "suostumukset", np.full(ok.sum(), np.datetime64(snapshot, "M")),
                 sloppy(rng, codes.take(pa.array(p_idx[ok])), 0.05), {"consent_date": given[ok], "withdrawn_date": w},
                 stats)
    return stats


def _when(mask: np.ndarray, values: np.ndarray) -> pa.Array:
    """``values`` where ``mask``, else empty."""
    return pa.array(values.tolist(), pa.string(), mask=~mask)


def _names(codes) -> dict[str, str]:
    """Finnish names of municipality codes, from the shipped code table."""
    from pipelines.regions import municipalities

    table = municipalities()
    return {c: table[c].name_fi for c in codes}
