"""A small hand-made landing zone whose every indicator is worked out by hand.

P1 TTK 1.2.2021–31.5.2021 (TYO; the end arrives in a later delivery) and again
   1.9.2022–30.9.2022 (MUU); municipal work trial starting the same day as TTK;
   coaching 1.6.2021–31.12.2021, placed 1.7.2021 (Avoin); TE 01 → 11 from 1.6.2021.
P2 TYP from 1.1.2021; TTK from 15.3.2021 (ongoing); coaching from 1.11.2022 (typed
   date); TE 01 ongoing overlapped by 12 in 1.9.–31.12.2021 (the later start decides).
P3 coaching 1.2.2022 with a work trial (not a placement); TTK from 1.10.2022 (windows
   of 6 and 12 months not observed); no TE spell (status none).
P4 TTK, but no consent row: held back, counted as awaiting consent.
P5 TTK and register data, consent withdrawn in the latest snapshot: erased.
P6 register data only (TE, Kela): comparison population.
"""
import datetime as dt

from tests.landing_writer import Landing, fi, hetu

P1, P2, P3 = hetu(5, 5, 1980, 101), hetu(6, 6, 1975, 202), hetu(7, 7, 2001, 303)
P4, P5, P6 = hetu(8, 8, 1990, 404), hetu(9, 9, 1985, 505), hetu(10, 10, 1970, 606, "Y")
D = dt.date


def ttk(code, referral, start, end=None, reason="", mun="91", role="LAAKARI"):
    return [code, mun, "TE", fi(referral), fi(start), fi(end), reason, role]


def write(landing: Landing) -> None:
    landing.csv("ttk", "2021-02", [ttk(P1, D(2021, 1, 1), D(2021, 2, 1))])
    landing.csv("ttk", "2021-03", [ttk(P2, D(2021, 3, 1), D(2021, 3, 15)), ttk(P5, D(2021, 3, 1), D(2021, 3, 20))])
    landing.csv("ttk", "2021-05", [ttk(" " + P1.lower(), D(2021, 1, 1), D(2021, 2, 1), D(2021, 5, 31), "TYO")])
    landing.csv("ttk", "2022-07", [ttk(P4, D(2022, 6, 1), D(2022, 7, 1))])
    landing.csv("ttk", "2022-09", [ttk(P1, D(2022, 8, 1), D(2022, 9, 1))])
    landing.csv("ttk", "2022-10", [ttk(P1, D(2022, 8, 1), D(2022, 9, 1), D(2022, 9, 30), "MUU"),
                                   ttk(P3, D(2022, 9, 1), D(2022, 10, 1), mun="505")])
    landing.csv("te", "2021-01", [[P1, "091", "01", "2020-01-01", "", "Helsinki"]])
    landing.csv("te", "2022-12", [
        [P1, "091", "01", "2020-01-01", "2021-05-31", "Helsinki"],
        [P1, "092", "11", "2021-06-01", "", "Vantaa"],
        [P2, "186", "01", "2020-06-01", "", "Järvenpää"],
        [P2, "186", "12", "2021-09-01", "2021-12-31", "Järvenpää"],
        [P4, "186", "01", "2020-06-01", "", "Järvenpää"],
        [P5, "858", "01", "2020-06-01", "", "Tuusula"],
        [P6, "858", "01", "2019-01-01", "", "Tuusula"],
    ])
    landing.kela("2022-12", [
        (P1, "202002", "TMTU", 20, 20000, 10000),   # m0−12: before
        (P1, "202101", "TMTU", 20, 40000, 20000),   # before
        (P1, "202102", "TMTU", 20, 99900, 99900),   # m0 itself: neither
        (P1, "202103", "TMTU", 20, 10000, 5000),    # after
        (P1, "202202", "TMTU", 20, 14000, 7000),    # m0+12: after
        (P1, "202203", "TMTU", 20, 99900, 99900),   # m0+13: neither
        (P1, "202012", "TOTU", 0, 1000, 1000),      # before
        (P1, "202101", "PPR", 20, 50000, 0),        # another benefit: ignored
        (P2, "202101", "TMTU", 20, 60000, 30000),   # P2 m0 = 2021-03: before
        (P5, "202101", "TMTU", 20, 60000, 30000),
        (P6, "202101", "TMTU", 20, 60000, 30000),
    ])
    landing.csv("kunta", "2021-02", [[P1, "091", "TYOKOKEILU", "2021-02-01", "2021-03-15"]])
    landing.typ("2021-01", [{"hetu": P2, "kunta": "186", "alku": "2021-01-01", "loppu": None,
                             "monialainen_suunnitelma": True}])
    landing.valmennus("2021-06", [[P1, dt.datetime(2021, 6, 1), None, dt.datetime(2021, 7, 1), "Avoin", 37.5, "G"]])
    landing.valmennus("2021-12", [[P1, dt.datetime(2021, 6, 1), dt.datetime(2021, 12, 31), dt.datetime(2021, 7, 1),
                                   "Avoin", 37.5, "G"]])
    landing.valmennus("2022-02", [[P3, dt.datetime(2022, 2, 1), None, dt.datetime(2022, 3, 15), "Työkokeilu", 20, "Q"],
                                  [P5, dt.datetime(2022, 2, 1), None, None, None, None, None]])
    landing.valmennus("2022-11", [[P2, "1.11.2022", None, None, None, None, None]])
    landing.csv("mittarit", "2021-05", [
        [P1, "2.2.2021", "TKI", "ALKU", "3"], [P1, "10.2.2021", "TKI", "ALKU", "5"],
        [P1, "20.5.2021", "TKI", "LOPPU", "7"], [P1, "30.5.2021", "TKI", "LOPPU", "6"],
        [P2, "16.3.2021", "TKI", "ALKU", "4"], [P2, "17.3.2021", "TKI", "LOPPU", "4"],
        [P2, "16.3.2021", "WHODAS12", "ALKU", "40,5"], [P2, "1.3.2021", "WHODAS12", "LOPPU", "30,5"],
        [P5, "1.4.2021", "TKI", "ALKU", "2"], [P5, "1.5.2021", "TKI", "LOPPU", "9"],
    ])
    landing.csv("mittarit", "2022-10", [[P3, "1.10.2022", "TKI", "ALKU", "2"]])
    landing.csv("suostumukset", "2022-06", [[P1, "1.1.2021", ""], [P2, "1.3.2021", ""], [P5, "1.3.2021", ""]])
    landing.csv("suostumukset", "2022-12", [[P1, "1.1.2021", ""], [P2, "1.3.2021", ""], [P3, "1.9.2022", ""],
                                            [P5, "1.3.2021", "1.11.2022"]])
