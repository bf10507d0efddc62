"""The national report: the regions side by side and pooled, a Finnish A4 PDF from ``national.duckdb``.

Built by ``tyokyky pool`` into ``OUT/reports/kansallinen_raportti_<as_of>.pdf``. Pages reuse the
steering-group report's helpers (:class:`reports.steering.Report`); every number passes
:class:`reports.disclosure.Disclosure` again after pooling (a pooled cell of fewer than five is
hidden like a regional one) and the release is recorded in ``OUT/releases``.
"""
from __future__ import annotations

import datetime as dt
import textwrap
from dataclasses import dataclass
from pathlib import Path

import duckdb
import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.patches import FancyBboxPatch

from pipelines.regions import NATIONAL
from reports import formatting as fmt
from reports import release_log
from reports.disclosure import HIDDEN, Disclosure, Rules
from reports.steering import A4, BLUE, GREY, ORANGE, OUTCOMES, SERVICE_NAMES, TEAL, Report

OUTPUT = "kansallinen_raportti"
NATIONAL_TITLE = "Koko maa (yhdistetty)"


@dataclass
class NationalResult:
    path: Path
    pages: int
    release: Path


#: the national report's closing notes: page -> (height on the page, text[, width, size])
NATIONAL_NOTES = {
    "costs": (0.36, (
        "Työmarkkinatuen ja perustoimeentulotuen kuntaosuus yhteensä. Koko maan summat ovat alueiden "
        "summien summia. Ennen–jälkeen-muutos kuvaa samojen ihmisten kustannuksia; ohjelman ansiota "
        "on vain vaikutusarvio (sivu Vaikuttavuus). Kuvassa vain alueet, joilla on vähintään "
        "{threshold} asiakasta.")),
    "cover": (0.28, (
        "Alueet luovuttavat kansalliseen arviointiin vain koostetut luvut (lukumäärät, summat ja "
        "jakaumat), eivät henkilötason tietoja, ja jokaisella alueella on oma avaimensa, joten "
        "henkilöitä ei voi yhdistää alueiden välillä. Koko maan luvut lasketaan alueiden luvuista: "
        "lukumäärät ja summat lasketaan yhteen, osuudet ja keskiarvot yhteenlasketuista osoittajista "
        "ja nimittäjistä, vaikutusarviot käänteisvarianssipainoin. Alle viiden henkilön luvut on "
        "peitetty (<5) myös yhdistämisen jälkeen."), 88, 10),
    "effects": (0.20, (
        "Kukin alue vertaa TTK:n aloittaneita oman alueensa samankaltaisiin työnhakijoihin. Koko maan "
        "arvio yhdistää alueiden arviot painottamalla kutakin käänteisellä varianssilla "
        "(1 / keskivirhe²): "
        "tarkempi arvio painaa enemmän, ja yhdistetyn arvion keskivirhe on √(1 / painojen summa). "
        "Arviota ei näytetä alueelta, jolla on alle viisi verrattua TTK:n aloittanutta; yhdistetty "
        "arvio lasketaan alueista, joilla arvio on."), 98, 8),
}


class NationalReport(Report):
    """Same pages, header and footer as the regional report; rows are regions, the last the pooled one."""

    notes = NATIONAL_NOTES

    def __init__(self, con: duckdb.DuckDBPyConnection, pdf: PdfPages, sup: Disclosure, previous: dict | None = None):
        self.con, self.pdf, self.sup, self.previous = con, pdf, sup, previous
        self.pages, self.flags, self._impact, self._answers = 0, [], None, {}
        self.regions = self.q("SELECT region, title, controller, as_of, key_fingerprint FROM nat.regions "
                              "ORDER BY region")
        self.titles = dict(zip(self.regions["region"], self.regions["title"]))
        self.titles[NATIONAL] = NATIONAL_TITLE
        self.as_of = max((d for d in self.regions["as_of"] if d is not None), default=None)
        self.region = ", ".join(self.regions["title"])
        self.order = [*self.regions["region"], NATIONAL]

    def footer(self) -> str:
        return f"Työkykyohjelma · kansallinen koonti · {len(self.regions)} aluetta · tilanne {fmt.date(self.as_of)}"

    def rows_by_region(self, sql: str) -> dict:
        """{region: DataFrame} of a nat query, in the report's order (regions, then national)."""
        df = self.q(sql)
        return {r: df[df["region"] == r] for r in self.order}

    # ------------------------------------------------------------------ pages
    def cover(self) -> None:
        fig = plt.figure(figsize=A4)
        fig.add_artist(FancyBboxPatch((0, 0.62), 1, 0.38, boxstyle="square,pad=0", color=BLUE,
                                      transform=fig.transFigure))
        fig.text(0.08, 0.88, "Työkykyohjelma", fontsize=30, weight="bold", color="white")
        fig.text(0.08, 0.83, "Kansallinen koonti", fontsize=20, color="white")
        fig.text(0.08, 0.76, "Alueet rinnakkain ja yhdistettynä", fontsize=13, color="white")
        y = 0.56
        fig.text(0.08, y, "Alue", fontsize=10, color=GREY, weight="bold")
        fig.text(0.50, y, "Rekisterinpitäjä", fontsize=10, color=GREY, weight="bold")
        fig.text(0.82, y, "Tilannepäivä", fontsize=10, color=GREY, weight="bold")
        for r in self.regions.itertuples():
            y -= 0.035
            fig.text(0.08, y, r.title, fontsize=10.5)
            fig.text(0.50, y, r.controller or "–", fontsize=9)
            fig.text(0.82, y, fmt.date(r.as_of), fontsize=10)
        y -= 0.05
        fig.text(0.08, y, "Koostettu", fontsize=10, color=GREY)
        fig.text(0.36, y, fmt.date(dt.datetime.now()) + dt.datetime.now().strftime(" klo %H.%M"), fontsize=10)
        self.closing_note(fig, "cover")

    def outcomes(self) -> None:
        s = self.sup
        fig = self.page("Tulokset alueittain")
        eo = self.rows_by_region("SELECT * FROM nat.employment_outcomes WHERE window_months = 12")
        cp = self.rows_by_region("SELECT * FROM nat.coaching_placements WHERE window_months = 6")
        tp = self.rows_by_region("SELECT region, sum(started) AS started, sum(ended) AS ended, "
                                 "sum(round(coalesce(share_within_6_months, 0) * ended)) AS within "
                                 "FROM nat.ttk_process GROUP BY region")
        rows, shares = [], []
        for region in self.order:
            e, c, t = (d.iloc[0] if len(d) else None for d in (eo[region], cp[region], tp[region]))
            cell = f"{region}/{{}}".format
            share = s.share(e["employed_open_market"], e["clients"], cell("employment_outcomes/window=12/share")) \
                if e is not None else HIDDEN
            shares.append((region, share, e))
            rows.append([self.titles[region],
                         s.count(t["started"], cell("ttk_process/started")) if t is not None else HIDDEN,
                         s.share(int(t["within"]), t["ended"], cell("ttk_process/within_6_months"))
                         if t is not None else HIDDEN,
                         s.count(e["clients"], cell("employment_outcomes/window=12/clients"))
                         if e is not None else HIDDEN,
                         share,
                         s.count(c["clients"], cell("coaching_placements/window=6/clients"))
                         if c is not None else HIDDEN,
                         s.share(c["placed"], c["clients"], cell("coaching_placements/window=6/share"))
                         if c is not None else HIDDEN])
        fig.text(0.08, 0.915, "TTK-arvioinnit, työllistyminen 12 kk kohdalla ja IPS-valmennus", fontsize=10, color=GREY)
        self.table(fig, [0.08, 0.70, 0.84, 0.2],
                   ["Alue", "TTK\naloitettu", "Valmis\n≤ 6 kk", "Seurattu\n12 kk", "Avoimet\ntyömarkkinat",
                    "IPS\nvalmennettu", "Työllistyi\n6 kk"], rows, [0.28, 0.11, 0.11, 0.11, 0.13, 0.13, 0.13], size=7.5)
        ax = fig.add_axes([0.30, 0.38, 0.60, 0.26])
        drawn = [(region, e) for region, text, e in shares if text != HIDDEN]
        if drawn:
            values = [100 * int(e["employed_open_market"]) / int(e["clients"]) for _, e in drawn]
            colors = [ORANGE if r == NATIONAL else BLUE for r, _ in drawn]
            ax.barh(range(len(drawn)), values, color=colors)
            ax.set_yticks(range(len(drawn)), [self.titles[r] for r, _ in drawn], fontsize=8)
            ax.invert_yaxis()
            ax.set_xlabel("% TTK-kohortista avoimilla työmarkkinoilla 12 kk kohdalla", fontsize=8)
        self.axis(ax, bool(drawn), horizontal=True)
        self.paragraph(fig, 0.08, 0.32,
                       "Koko maan rivi on laskettu alueiden luvuista: seurattujen ja työllistyneiden määrät "
                       "yhteen, osuus yhteenlasketuista luvuista. Osuutta ei näytetä alle viiden henkilön "
                       "joukosta eikä, jos osoittaja on alle viisi. Henkilö, joka on ollut asiakkaana kahdella "
                       "alueella, lasketaan kummallakin (pseudonyymejä ei voi yhdistää alueiden välillä).",
                       width=95, size=8.5)
        self.finish(fig)

    def pathways(self) -> None:
        s = self.sup
        fig = self.page("Palvelupolut alueittain")
        top = self.q(f"SELECT from_service, to_service FROM nat.pathway_transitions WHERE region = '{NATIONAL}' "
                     "ORDER BY clients DESC, from_service, to_service LIMIT 12")
        data = self.q("SELECT region, from_service, to_service, clients FROM nat.pathway_transitions")
        counts = {(r.region, r.from_service, r.to_service): r.clients for r in data.itertuples()}
        rows = []
        for t in top.itertuples():
            name = " → ".join(SERVICE_NAMES.get(x, x) for x in (t.from_service, t.to_service))
            rows.append([name, *(s.count(counts.get((r, t.from_service, t.to_service), 0),
                                         f"{r}/pathway_transitions/{t.from_service}>{t.to_service}/clients")
                                 for r in self.order)])
        fig.text(0.08, 0.915, "Yleisimmät siirtymät palvelusta toiseen: asiakkaita alueittain", fontsize=10, color=GREY)
        width = 0.5 / len(self.order)
        header = ["Siirtymä", *("\n".join(textwrap.wrap(self.titles[r], 14)) for r in self.order)]
        self.table(fig, [0.08, 0.40, 0.84, 0.48], header, rows, [0.5, *([width] * len(self.order))], size=7)
        self.finish(fig)

    def costs(self) -> None:
        s = self.sup
        fig = self.page("Kunnan kustannukset alueittain")
        cs = self.rows_by_region("SELECT * FROM nat.cost_savings WHERE benefit = 'TOTAL'")
        rows = []
        for region in self.order:
            if not len(cs[region]):
                continue
            r = cs[region].iloc[0]
            cell = f"{region}/cost_savings/TOTAL/{{}}".format
            rows.append([self.titles[region], s.count(r["clients"], cell("clients")),
                         *(s.euros(r[m], r["clients"], cell(m)) for m in ("before_eur", "after_eur", "saving_eur"))])
        fig.text(0.08, 0.915, "Havaittu (ei ohjelman vaikutus): kunnan maksuosuus 12 kk ennen ja jälkeen TTK:n alun",
                 fontsize=10, color=GREY)
        self.table(fig, [0.08, 0.68, 0.84, 0.22], ["Alue", "Asiakkaita", "Ennen", "Jälkeen", "Vähennys"], rows,
                   [0.36, 0.13, 0.17, 0.17, 0.17])
        fig.text(0.08, 0.72, "Kunnan maksuosuus asiakasta kohden, € (alueet ovat eri kokoisia)", fontsize=10,
                 color=GREY)
        ax = fig.add_axes([0.14, 0.44, 0.76, 0.26])
        shown = [(region, cs[region].iloc[0]) for region in self.order
                 if len(cs[region]) and int(cs[region].iloc[0]["clients"]) >= s.threshold]
        if shown:
            x = range(len(shown))
            per = lambda r, m: float(r[m]) / int(r["clients"])  # noqa: E731
            ax.bar([i - 0.2 for i in x], [per(r, "before_eur") for _, r in shown], 0.4, color=GREY, label="12 kk ennen")
            ax.bar([i + 0.2 for i in x], [per(r, "after_eur") for _, r in shown], 0.4, color=TEAL, label="12 kk jälkeen")
            ax.set_xticks(list(x), ["\n".join(textwrap.wrap(self.titles[r], 16)) for r, _ in shown], fontsize=7.5)
            ax.legend(fontsize=8, frameon=False)
        self.axis(ax, bool(shown))
        self.closing_note(fig, "costs", threshold=s.threshold)

    def effects(self) -> None:
        s = self.sup
        fig = self.page("Vaikuttavuus alueittain ja yhdistettynä")
        est = self.q("SELECT * FROM nat.impact_estimates")
        fig.text(0.08, 0.915, "Vaikutusarviot 95 %:n luottamusväleineen; koko maa = käänteisvarianssipainotettu",
                 fontsize=10, color=GREY)
        for i, (outcome, (label, unit, scale)) in enumerate(OUTCOMES.items()):
            top = 0.86 - i * 0.16
            fig.text(0.08, top, label + f" ({unit})", fontsize=9, weight="bold")
            ax = fig.add_axes([0.45, top - 0.13, 0.45, 0.115])
            rows = est[est["outcome"] == outcome]
            labels, drawn = [], 0
            for j, region in enumerate(self.order):
                r = rows[rows["region"] == region]
                r = r.iloc[0] if len(r) else None
                cell = f"{region}/impact_estimates/{outcome}"
                ok = r is not None and r["att"] is not None and r["treated"] is not None and r["treated"] >= s.threshold
                text = s.statistic(r["att"] * scale if ok else None, r["treated"] if r is not None else None, cell,
                                   0 if unit == "€" else 1, unit)
                labels.append(f"{self.titles[region]}: {text}")
                if ok:
                    color = ORANGE if region == NATIONAL else BLUE
                    low, att, high = (float(r[c]) * scale for c in ("ci_low", "att", "ci_high"))
                    ax.plot([low, high], [j, j], color=color, linewidth=2)
                    ax.plot([att], [j], "D" if region == NATIONAL else "o", color=color, markersize=5)
                    drawn += 1
            if drawn:
                ax.axvline(0, color=GREY, linewidth=0.8, linestyle="--")
                ax.set_yticks(range(len(self.order)), labels, fontsize=7)
                ax.set_ylim(len(self.order) - 0.5, -0.5)
                ax.tick_params(axis="x", labelsize=7)
            else:
                self.paragraph(fig, 0.08, top - 0.02, "\n".join(labels), size=7.5)
            self.axis(ax, bool(drawn), horizontal=True)
        self.closing_note(fig, "effects")

    def methods(self) -> None:
        s = self.sup
        fig = self.page("Menetelmät ja aineistot")
        rows = [[r.title, r.controller or "–", fmt.date(r.as_of), str(r.key_fingerprint)]
                for r in self.regions.itertuples()]
        self.table(fig, [0.08, 0.72, 0.84, 0.18], ["Alue", "Rekisterinpitäjä", "Tilannepäivä", "Avaimen tunniste"],
                   rows, [0.3, 0.34, 0.14, 0.22], size=8)
        self.paragraph(fig, 0.08, 0.66,
                       "Aineistot. Kukin alue rakentaa oman tietopohjansa omalla avaimellaan ja luovuttaa "
                       "kansalliseen arviointiin paketin koostetuista luvuista (tarkistussummat, määrittelyversio ja "
                       "rakennuksen tunnisteet). Yhdistäminen tarkistaa paketit: tarkistussummat, saman "
                       "määrittelyversion ja indikaattorimääritykset, ettei sama alue ole mukana kahdesti eikä kaksi "
                       "aluetta käytä samaa avainta.\n\n"
                       "Yhdistäminen. Lukumäärät ja summat lasketaan yhteen; osuudet ja keskiarvot lasketaan "
                       "yhteenlasketuista osoittajista ja nimittäjistä, joten ne ovat samat kuin jos kaikkien "
                       "alueiden tiedot olisi käsitelty yhdessä. Mediaanit lasketaan alueiden yhteenlasketuista "
                       "päiväjakaumista, eivät alueiden mediaanien keskiarvona. Vaikutusarviot yhdistetään "
                       "käänteisvarianssipainoin, koska "
                       "verrokit valitaan kunkin alueen omista työnhakijoista.\n\n"
                       f"Pienten lukujen suojaus. Luvut 1–{s.threshold - 1} näytetään muodossa <{s.threshold}, eikä "
                       f"osuuksia, keskiarvoja tai summia näytetä alle {s.threshold} henkilön joukosta, myöskään "
                       f"yhdistämisen jälkeen. {self.rounding_text()} Julkaisu kirjataan julkaisulokiin.\n\n"
                       f"{self.differencing_text()}", width=92, size=9)
        self.finish(fig)


def build_national_report(db_path: Path, reports_dir: Path, releases_dir: Path | None = None,
                          rules: Rules | None = None) -> NationalResult:
    """Write the national PDF for ``national.duckdb`` and its release record (``OUT/releases``)."""
    db_path, reports_dir = Path(db_path), Path(reports_dir)
    releases_dir = Path(releases_dir) if releases_dir else db_path.parent / "releases"
    rules = rules or Rules()
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        regions = con.sql("SELECT string_agg(region, ', ' ORDER BY region), max(as_of) FROM nat.regions").fetchall()[0]
        as_of = regions[1]
        reports_dir.mkdir(parents=True, exist_ok=True)
        path = reports_dir / f"{OUTPUT}_{as_of.isoformat() if as_of else 'ei-tilannepaivaa'}.pdf"
        tmp = path.with_suffix(".pdf.tmp")
        previous = release_log.previous_release(releases_dir, OUTPUT)
        plt.rcParams.update({"font.family": "DejaVu Sans", "axes.titlesize": 9})
        with PdfPages(tmp, metadata={"Title": "Työkykyohjelma – kansallinen koonti", "Author": "tyokyky",
                                     "Subject": f"Alueet {regions[0]}, tilanne {fmt.date(as_of)}"}) as pdf:
            report = NationalReport(con, pdf, Disclosure(rules), previous)
            for page in (report.cover, report.outcomes, report.pathways, report.costs, report.effects, report.methods):
                page()
            pages = report.pages
        published = path.relative_to(releases_dir.parent) if path.is_relative_to(releases_dir.parent) else path
        info = {"regions": regions[0], "as_of": as_of}
        record = release_log.record(releases_dir, published, tmp, OUTPUT, info, rules.as_dict(), report.sup,
                                    report.flags, previous)
        tmp.replace(path)
    finally:
        con.close()
    return NationalResult(path, pages, record)
