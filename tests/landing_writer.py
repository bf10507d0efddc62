"""Write small hand-made partner deliveries for tests, in the exact partner formats.

Independent of the synthetic generator on purpose: tests that check readers and
indicators should not share code with the thing that makes their inputs.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pseudonymize.hetu import CHECK_CHARACTERS

HEADERS = {
    "ttk": "henkilotunnus;kuntakoodi;lahettava_taho;lahete_pvm;alkupvm;loppupvm;paattymissyy;vastuutyontekija",
    "mittarit": "henkilotunnus;mittauspvm;mittari;vaihe;arvo",
    "te": "HETU;KUNTA;TILA;ALKUPVM;LOPPUPVM;KUNTANIMI",
    "kunta": "hetu,kunta,palvelu,alkupvm,loppupvm",
    "suostumukset": "henkilotunnus;suostumus_pvm;peruttu_pvm",
}
NAMES = {"ttk": "ttk_jaksot_{p}.csv", "mittarit": "mittaukset_{p}.csv", "te": "te_tilat_{p}.csv",
         "kunta": "kunta_palvelut_{p}.csv", "suostumukset": "suostumukset_{p}.csv",
         "kela": "kela_etuudet_{p}.txt", "typ": "typ_{p}.jsonl", "valmennus": "valmennus_{p}.xlsx"}
VALMENNUS_HEADER = ["Henkilötunnus", "Valmennus alkoi", "Valmennus päättyi", "Työllistymispäivä",
                    "Työsuhteen tyyppi", "Työaika h/vko", "Toimiala"]


def hetu(day: int, month: int, year: int, individual: int, sign: str | None = None) -> str:
    """A synthetic valid identity code for the given birth date and individual number."""
    if sign is None:
        sign = "-" if year < 2000 else "A"
    yy = year % 100
    check = CHECK_CHARACTERS[int(f"{day:02d}{month:02d}{yy:02d}{individual:03d}") % 31]
    return f"{day:02d}{month:02d}{yy:02d}{sign}{individual:03d}{check}"


def fi(d: dt.date | None) -> str:
    return "" if d is None else f"{d.day}.{d.month}.{d.year}"


def iso(d: dt.date | None) -> str:
    return "" if d is None else d.isoformat()


class Landing:
    """``Landing(root).csv("ttk", "2021-03", rows)`` and friends write one delivery each."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, partner: str, period: str) -> Path:
        f = self.root / partner / period
        f.mkdir(parents=True, exist_ok=True)
        return f

    def path(self, partner: str, period: str, name: str | None = None) -> Path:
        return self.folder(partner, period) / (name or NAMES[partner].format(p=period.replace("-", "")))

    def raw(self, partner: str, period: str, content: bytes, name: str | None = None) -> Path:
        p = self.path(partner, period, name)
        p.write_bytes(content)
        return p

    def csv(self, partner: str, period: str, rows: list[list[str]], header: str | None = None,
            name: str | None = None) -> Path:
        """Delimited partners with their own encoding, BOM and delimiter."""
        delim = "," if partner == "kunta" else ";"
        lines = [header or HEADERS[partner]] + [delim.join(r) for r in rows]
        text = "\n".join(lines) + "\n"
        if partner == "te":
            data = text.encode("iso-8859-1")
        elif partner == "kunta":
            data = text.encode("utf-8")
        else:
            data = b"\xef\xbb\xbf" + text.encode("utf-8")
        return self.raw(partner, period, data, name)

    def kela(self, period: str, records: list[tuple], trailer_count: int | None = None,
             header: bool = True, trailer: bool = True, name: str | None = None) -> Path:
        """records: (code, 'YYYYMM', benefit, days, paid_cents, municipal_cents)."""
        stamp = period.replace("-", "")
        lines = [f"ALKU{stamp}{stamp}28"] if header else []
        for code, month, benefit, days, paid, share in records:
            lines.append(f"{code:<11}{month}{benefit:<4}{days:03d}{paid:010d}{share:010d}")
        if trailer:
            lines.append(f"LOPPU{(len(records) if trailer_count is None else trailer_count):09d}")
        return self.raw("kela", period, ("\r\n".join(lines) + "\r\n").encode("iso-8859-1"), name)

    def typ(self, period: str, objects: list, name: str | None = None) -> Path:
        lines = [o if isinstance(o, str) else json.dumps(o) for o in objects]
        return self.raw("typ", period, ("\n".join(lines) + "\n").encode("utf-8"), name)

    def valmennus(self, period: str, rows: list[list], sheet: str = "Asiakkaat", name: str | None = None,
                  header: list[str] = VALMENNUS_HEADER) -> Path:
        import openpyxl

        wb = openpyxl.Workbook()
        ws = wb.active
        ws.title = sheet
        ws.append(header)
        for r in rows:
            ws.append(r)
        p = self.path("valmennus", period, name)
        wb.save(p)
        return p
