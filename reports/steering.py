"""The steering-group report: a Finnish A4 PDF drawn with matplotlib.

Every number on every page — tables, chart labels and chart bars — passes through
:class:`reports.disclosure.Disclosure` (suppressed, then rounded) and is recorded as a cell of
the release (:mod:`reports.release_log`); charts draw suppressed cells as empty and the rest
rounded.
The report reads the knowledge base read-only and writes
``<reports>/ohjausryhmaraportti_<as_of>.pdf``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import textwrap
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402
from matplotlib.table import Table  # noqa: E402

from pipelines import view_answers  # noqa: E402
from reports import formatting as fmt  # noqa: E402
from reports import release_log  # noqa: E402
from reports.disclosure import HIDDEN, Disclosure, Rules  # noqa: E402
from schemas import load_contracts  # noqa: E402

A4 = (8.27, 11.69)
BLUE, TEAL, GREY, LIGHT, ORANGE = "#1f4e79", "#2a9d8f", "#6c757d", "#e9eef4", "#e76f51"
SERVICE_NAMES = {
    "TTK": "TTK-arviointi", "VALMENNUS": "IPS-valmennus", "TYP": "TYP",
    "KUNTOUTTAVA_TYOTOIMINTA": "Kuntouttava työtoiminta", "TYOKOKEILU": "Työkokeilu",
    "PALKKATUKI": "Palkkatuki", "TYOHONVALMENNUS": "Työhönvalmennus", "KOULUTUS": "Koulutus",
    "SOSIAALINEN_KUNTOUTUS": "Sosiaalinen kuntoutus",
}
INSTRUMENTS = {"TKI": "Työkykyindeksi TKI (0–10, suurempi parempi)",
               "WHODAS12": "WHODAS 12 (0–100, pienempi parempi)",
               "PHQ9": "PHQ-9 masennusoireet (0–27, pienempi parempi)",
               "AUDIT": "AUDIT alkoholinkäyttö (0–40, pienempi parempi)"}
OUTCOMES = {  # impact outcome → (Finnish label, unit shown, scale to that unit)
    "employed_open_market_6m": ("Avoimessa työssä 6 kk kohdalla", "%-yks.", 100),
    "employed_open_market_12m": ("Avoimessa työssä 12 kk kohdalla", "%-yks.", 100),
    "employed_months_12m": ("Työssäolokuukaudet 12 kk aikana", "kk", 1),
    "municipal_cost_change_eur": ("Kunnan kustannusten muutos / asiakas", "€", 1),
}
#: each partner's name in the report, from its contract (``label``)
PARTNERS = {p: c.label for p, c in load_contracts().items()}


#: each page's closing note (how its numbers are defined; ``{name}`` = a figure of the page):
#: page -> (height on the page, text[, width, size])
NOTES = {
    "effects": (0.205, ("Miten luetaan: jokaista kuukautta verrataan pieneen kokeeseen. TTK-arvioinnin aloittaneita "
        "verrataan työnhakijoihin, jotka olivat edellisenä kuukautena työttömiä eivätkä olleet "
        "(vielä) aloittaneet TTK:ta tai IPS-valmennusta, ja joilla on sama sukupuoli, syntymävuoden "
        "viisivuotisryhmä ja sama määrä edeltävän vuoden työttömyyttä. Ero kertoo, mitä TTK:n "
        "aloittaminen juuri silloin muutti verrattuna siihen, ettei sitä aloitettu silloin; osa "
        "verrokeista aloittaa myöhemmin, joten arvio on varovainen. Se ei kerro, mitä olisi "
        "tapahtunut ilman ohjelmaa kokonaan. Tulokset perustuvat vain rekistereihin (TE-toimiston "
        "tilat ja Kelan maksut): hyvinvointi ja toimintakyky eivät näy niissä, eikä vertailu poista "
        "eroja, joita rekistereissä ei näy. Jos väli ylittää nollan, aineisto ei riitä osoittamaan "
        "vaikutusta. Verrattuja TTK:n aloittaneita {treated}; ilman verrokkia jäi {unmatched}."), 98, 8),
    "cover": (0.28, ("Raportin luvut on laskettu pseudonymisoidusta tietopohjasta, johon on yhdistetty "
        "hyvinvointialueen, TE-toimiston, Kelan, TYP:n ja kuntien tiedot. Henkilötunnuksia ei "
        "ole raportissa eikä tietopohjassa. Alle viiden henkilön luvut on peitetty (<5), muut "
        "lukumäärät pyöristetty, eikä osuuksia tai keskiarvoja näytetä alle viiden henkilön "
        "joukosta."), 88, 10),
    "ttk_process": (0.16, ("Tavoite: työkyvyn arviointi valmistuu 3–6 kuukaudessa (enintään 183 vrk). Odotus = "
        "päiviä lähetteestä jakson alkuun. Kesto ja tavoitteessa pysyminen lasketaan "
        "päättyneistä jaksoista.")),
    "employment": (0.18, ("Työmarkkina-asema = TE-toimiston tilajakso, joka on voimassa päivänä (arvioinnin alku "
        "+ 0/6/12 kk). Työllistyminen IPS-valmennuksessa = avoin työ, palkkatuettu työ tai "
        "oppisopimus; työkokeilua ei lasketa työllistymiseksi.")),
    "capacity": (0.24, ("Mukana TTK-kohortin asiakkaat, joilla on sekä alkumittaus että samana päivänä tai "
        "myöhemmin tehty loppumittaus. Verrataan asiakkaan ensimmäistä alkumittausta ja viimeistä "
        "loppumittausta. Keskiarvoja ei näytetä alle viiden asiakkaan joukosta.")),
}


OUTPUT = "ohjausryhmaraportti"


@dataclass
class ReportResult:
    path: Path
    pages: int
    release: Path | None = None      # its record in the release log
    differencing_flags: int = 0


class Report:
    """Pages share a header, a footer with the page number and one suppressor."""

    def __init__(self, con: duckdb.DuckDBPyConnection, pdf: PdfPages, sup: Disclosure, previous: dict | None = None):
        self.con, self.pdf, self.sup, self.previous = con, pdf, sup, previous
        self.pages = 0
        self.flags: list = []
        self._impact = None
        self._answers: dict[str, object] = {}
        info = con.sql("SELECT * FROM kb.build_info").df().iloc[0]
        self.info = info
        self.as_of = info["as_of"].date() if info["as_of"] is not None else None
        self.region = region_label(con)

    # ------------------------------------------------------------------ page helpers
    def q(self, sql: str):
        """A query as a DataFrame with None (not NaN) for SQL nulls. Views are computed when read,
        and some pages read the same one: each query runs once per report (the file is read-only)."""
        if sql not in self._answers:
            df = self.con.sql(sql).df()
            self._answers[sql] = df.astype(object).where(df.notna(), None)
        return self._answers[sql].copy()

    def page(self, title: str):
        fig = plt.figure(figsize=A4)
        fig.text(0.08, 0.955, title, fontsize=17, weight="bold", color=BLUE)
        fig.add_artist(plt.Line2D([0.08, 0.92], [0.945, 0.945], color=BLUE, linewidth=1.2))
        return fig

    def finish(self, fig) -> None:
        self.pages += 1
        fig.text(0.08, 0.03, self.footer(), fontsize=7.5, color=GREY)
        fig.text(0.92, 0.03, f"{self.pages}", fontsize=8, color=GREY, ha="right")
        self.pdf.savefig(fig)
        plt.close(fig)

    def footer(self) -> str:
        return f"Työkykyohjelma · {self.region} · ohjausryhmän raportti · tilanne {fmt.date(self.as_of)}"

    @staticmethod
    def axis(ax, drawn: bool, horizontal: bool = False) -> None:
        """Finnish tick labels; an empty chart says why instead of showing bare axes."""
        if not drawn:
            ax.cla()
            ax.axis("off")
            ax.text(0.5, 0.5, "Kuvaa ei näytetä: liian vähän asiakkaita (alle 5).", ha="center", va="center",
                    fontsize=9, color=GREY, transform=ax.transAxes)
            return
        formatter = matplotlib.ticker.FuncFormatter(lambda v, _: fmt.number(v, 0 if float(v).is_integer() else 1))
        (ax.xaxis if horizontal else ax.yaxis).set_major_formatter(formatter)
        ax.spines[["top", "right"]].set_visible(False)

    @staticmethod
    def paragraph(fig, x, y, text, width=95, size=9.5, **kw) -> float:
        """Wrapped text; returns the y below it."""
        lines = []
        for para in text.split("\n"):
            lines += textwrap.wrap(para, width) or [""]
        fig.text(x, y, "\n".join(lines), fontsize=size, va="top", linespacing=1.45, **kw)
        return y - len(lines) * size * 1.45 / 72 / A4[1] - 0.01

    @staticmethod
    def table(fig, rect, header, rows, col_widths=None, size=8.5):
        ax = fig.add_axes(rect)
        ax.axis("off")
        if not rows:
            ax.text(0, 1, "Ei tietoja tällä ajanjaksolla.", fontsize=size, va="top", color=GREY)
            return ax
        n = len(header)
        widths = col_widths or [1 / n] * n
        # matplotlib's own row height for its default font size (as ax.table makes it), 1.35 times
        height = 1.35 * 1.2 * 10 / 72 * fig.dpi / ax.bbox.height
        t = Table(ax, loc="upper center")
        for r, row in enumerate([header, *rows]):
            for c, text in enumerate(row):
                cell = t.add_cell(r, c, widths[c], height, text=str(text), loc="left" if c == 0 else "right",
                                  edgecolor="#d0d7de", facecolor=BLUE if r == 0 else LIGHT if r % 2 == 0 else "white")
                if r == 0:
                    cell.set_text_props(color="white", weight="bold")
        t.auto_set_font_size(False)
        t.set_fontsize(size)
        ax.add_table(t)
        return ax

    notes = NOTES

    def closing_note(self, fig, page: str, **figures) -> None:
        """The page's closing note (``notes``: how its numbers are defined, with the page's
        ``figures`` filled in); the page is then done."""
        y, text, width, size = (*self.notes[page], 95, 8.5)[:4]
        self.paragraph(fig, 0.08, y, text.format(**figures) if figures else text, width=width, size=size)
        self.finish(fig)

    def impact(self):
        """ind.impact_estimates by outcome, and whether each may be published (att exists and at
        least the threshold of matched treated). Read once: three pages show it."""
        if self._impact is None:
            est = self.q("SELECT * FROM ind.impact_estimates").set_index("outcome")
            self._impact = est, {o: r.att is not None and r.treated >= self.sup.threshold for o, r in est.iterrows()}
        return self._impact

    def attributable_saving(self) -> tuple[str, str]:
        """(saving, 95 % interval) attributable to TTK: −att × matched treated of the cost change."""
        est, shown = self.impact()
        o = "municipal_cost_change_eur"
        if o not in est.index or not shown[o]:
            return HIDDEN, "ei arviota: alle 5 verrattavaa"
        r = est.loc[o]
        n = int(r["treated"])
        return (fmt.euros(-r["att"] * n),
                f"95 %:n väli {fmt.euros(-r['ci_high'] * n)} … {fmt.euros(-r['ci_low'] * n)}")

    def rounding_text(self) -> str:
        r = self.sup.rules
        if r.rounding_base <= 1:
            return "Lukumääriä ei pyöristetä."
        if r.midpoint_rounding:
            return (f"Muut lukumäärät näytetään {r.rounding_base} henkilön välin keskikohtana (esimerkiksi "
                    f"1–{r.rounding_base} → {r.round(1)}, {r.rounding_base + 1}–{2 * r.rounding_base} → "
                    f"{r.round(r.rounding_base + 1)}).")
        return f"Muut lukumäärät pyöristetään lähimpään {r.rounding_base}:llä jaolliseen lukuun."

    # ------------------------------------------------------------------ pages
    def cover(self) -> None:
        fig = plt.figure(figsize=A4)
        fig.patch.set_facecolor("white")
        fig.add_artist(FancyBboxPatch((0, 0.62), 1, 0.38, boxstyle="square,pad=0", color=BLUE,
                                      transform=fig.transFigure))
        fig.text(0.08, 0.88, "Työkykyohjelma", fontsize=30, weight="bold", color="white")
        fig.text(0.08, 0.83, "Ohjausryhmän raportti", fontsize=20, color="white")
        fig.text(0.08, 0.76, "Palvelupolut, työllistyminen ja kustannussäästöt", fontsize=13, color="white")
        periods = self.q("SELECT min(period) AS a, max(period) AS b FROM kb.deliveries WHERE status = 'loaded'")
        first = periods["a"][0]
        rows = [
            ("Hankealue", "\n".join(textwrap.wrap(self.region, 48))),
            ("Raportointijakso", f"{fmt.period(first)} – {fmt.date(self.as_of)}" if first else "–"),
            ("Tilannepäivä (as_of)", fmt.date(self.as_of)),
            ("Koostettu", fmt.date(dt.datetime.now()) + dt.datetime.now().strftime(" klo %H.%M")),
            ("Avaimen tunniste", str(self.info["key_fingerprint"])[:12]),
        ]
        y = 0.54
        for label, value in rows:
            fig.text(0.08, y, label, fontsize=11, color=GREY, va="top")
            fig.text(0.36, y, value, fontsize=11, va="top")
            y -= 0.04 + 0.02 * value.count("\n")
        self.closing_note(fig, "cover")

    def summary(self) -> None:
        s = self.sup
        fig = self.page("Tiivistelmä")
        eo = self.q("SELECT * FROM ind.employment_outcomes ORDER BY window_months").set_index("window_months")
        cp = self.q("SELECT * FROM ind.coaching_placements ORDER BY window_months").set_index("window_months")
        tp = self.q("SELECT sum(started) AS started, sum(ended) AS ended, "
                    "sum(share_within_6_months * ended) AS within FROM ind.ttk_process")
        wait = self.q("""SELECT median(start_date - referral_date) AS w, count(*) AS n FROM kb.episodes e
                         JOIN kb.clients c USING (pseudonym)
                         WHERE e.service = 'TTK' AND c.programme_client""")
        cs = self.q("SELECT * FROM ind.cost_savings").set_index("benefit")
        sc = self.q("SELECT * FROM ind.savings_scenario")
        cohort = int(self.q("SELECT count(*) AS n FROM kb.clients WHERE programme_client AND first_ttk_start IS NOT NULL")["n"][0])
        e12 = eo.loc[12] if 12 in eo.index else None
        c6 = cp.loc[6] if 6 in cp.index else None
        within = int(round(tp["within"][0] or 0))
        eo12, cp6 = "employment_outcomes/window=12/", "coaching_placements/window=6/"
        tiles = [
            ("Ohjelman asiakkaat", s.count(self.info["programme_clients"], "build_info/programme_clients"),
             "suostumuksen antaneet"),
            ("TTK-arvioinnin aloittaneet", s.count(cohort, "ttk_cohort/clients"), "TTK-kohortti"),
            ("Odotus lähetteestä", s.statistic(wait["w"][0], wait["n"][0], "ttk_wait/median_days", 0, "vrk"),
             "mediaani"),
            ("Arvio valmis 6 kk:ssa", s.share(within, tp["ended"][0], "ttk_process/all/within_6_months"),
             "päättyneistä TTK-jaksoista"),
            ("Avoimilla työmarkkinoilla 12 kk",
             s.share(e12["employed_open_market"], e12["clients"], eo12 + "employed_open_market_share")
             if e12 is not None else HIDDEN,
             f"{s.count(e12['clients'], eo12 + 'clients') if e12 is not None else HIDDEN} seurattua"),
            ("IPS: työllistyi 6 kk:ssa",
             s.share(c6["placed"], c6["clients"], cp6 + "placed_share") if c6 is not None else HIDDEN,
             f"{s.count(c6['clients'], cp6 + 'clients') if c6 is not None else HIDDEN} valmennettua"),
            ("Kunnan osuus: vähennys ennen–jälkeen",
             s.euros(cs.loc["TOTAL", "saving_eur"], cs.loc["TOTAL", "clients"], "cost_savings/TOTAL/saving_eur")
             if "TOTAL" in cs.index else HIDDEN, "havaittu muutos, ei ohjelman vaikutus"),
            ("TTK:n ansiota: säästö 12 kk", *self.attributable_saving()),
            ("TTK:n vaikutus avoimeen työhön 12 kk", self.effect_text("employed_open_market_12m"),
             "verrattuna samankaltaisiin työnhakijoihin"),
            ("Suunnitelman säästöarvio", fmt.euros(sc["annual_saving_eur"][0]), "vuodessa, laskennallinen"),
        ]
        for i, (label, value, note) in enumerate(tiles):
            col, row = i % 2, i // 2
            x, y = 0.08 + col * 0.43, 0.80 - row * 0.128
            fig.add_artist(FancyBboxPatch((x, y), 0.40, 0.11, boxstyle="round,pad=0.005,rounding_size=0.01",
                                          facecolor=LIGHT, edgecolor="none", transform=fig.transFigure))
            fig.text(x + 0.02, y + 0.085, label, fontsize=9.5, color=GREY)
            fig.text(x + 0.02, y + 0.035, value, fontsize=19, weight="bold", color=BLUE)
            fig.text(x + 0.02, y + 0.012, note, fontsize=7.5, color=GREY)
        self.paragraph(fig, 0.08, 0.155,
                       "Luvut ovat tietopohjan tilanteesta tilannepäivänä. Työllistymisen ja säästöjen "
                       "seurantaan otetaan vain asiakkaat, joiden seuranta-aika on kokonaan päättynyt ennen "
                       "tilannepäivää. Ennen–jälkeen-muutos kuvaa samojen ihmisten kustannuksia; ohjelman "
                       "ansiota on vain vaikutusarvio, joka vertaa samankaltaisiin työnhakijoihin (sivu "
                       "Vaikuttavuus). Määritelmät ovat raportin lopussa.", width=95)
        self.finish(fig)

    def ttk_process(self) -> None:
        s = self.sup
        fig = self.page("TTK-arviointiprosessi neljännesvuosittain")
        df = self.q("SELECT * FROM ind.ttk_process ORDER BY quarter")
        ax = fig.add_axes([0.1, 0.60, 0.82, 0.27])
        if len(df):
            started = [s.plot_value(v) for v in df["started"]]
            ended = [s.plot_value(v) for v in df["ended"]]
            x = range(len(df))
            ax.bar([i - 0.2 for i in x], started, width=0.4, color=BLUE, label="Aloitettuja jaksoja")
            ax.bar([i + 0.2 for i in x], ended, width=0.4, color=TEAL, label="Näistä päättyneitä")
            for i, (q, a, b) in enumerate(zip(df["quarter"], df["started"], df["ended"])):
                ax.text(i - 0.2, started[i], s.count(a, f"ttk_process/quarter={q}/started"), ha="center",
                        va="bottom", fontsize=7.5)
                ax.text(i + 0.2, ended[i], s.count(b, f"ttk_process/quarter={q}/ended"), ha="center",
                        va="bottom", fontsize=7.5)
            ax.set_xticks(list(x), [q.replace("Q", " Q") for q in df["quarter"]], fontsize=8)
            ax.legend(fontsize=8, frameon=False)
            ax.set_ylabel("jaksoja", fontsize=9)
        self.axis(ax, len(df) > 0 and max(started + ended) > 0)
        cell = "ttk_process/quarter={}/{}".format
        rows = [[q.replace("Q", " Q"), s.count(r.started, cell(q, "started")),
                 s.statistic(r.median_wait_days, r.started, cell(q, "median_wait_days"), 0),
                 s.count(r.ended, cell(q, "ended")),
                 s.statistic(r.median_duration_days, r.ended, cell(q, "median_duration_days"), 0),
                 s.share(round((r.share_within_6_months or 0) * (r.ended or 0)), r.ended, cell(q, "within_6_months"))]
                for q, r in zip(df["quarter"], df.itertuples())]
        self.table(fig, [0.08, 0.18, 0.84, 0.36],
                   ["Neljännes", "Aloitettu", "Odotus, vrk\n(mediaani)", "Päättynyt", "Kesto, vrk\n(mediaani)",
                    "Valmis ≤ 6 kk"], rows, [0.16, 0.14, 0.18, 0.14, 0.18, 0.2])
        self.closing_note(fig, 'ttk_process')

    def pathways(self) -> None:
        s = self.sup
        fig = self.page("Palvelupolut")
        tr = self.q("SELECT * FROM ind.pathway_transitions ORDER BY clients DESC, transitions DESC")
        shown = tr[tr["clients"] >= s.threshold].head(12)
        fig.text(0.08, 0.915, "Yleisimmät siirtymät palvelusta toiseen (vähintään "
                              f"{s.threshold} asiakasta)", fontsize=10, color=GREY)
        ax = fig.add_axes([0.05, 0.50, 0.9, 0.40])
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.axis("off")
        if len(shown):
            sources = list(dict.fromkeys(shown["from_service"]))
            targets = list(dict.fromkeys(shown["to_service"]))
            ys = lambda items: {n: 0.92 - i * (0.84 / max(len(items) - 1, 1)) for i, n in enumerate(items)}
            ysrc, ytgt = ys(sources), ys(targets)
            for n, y in ysrc.items():
                ax.add_patch(FancyBboxPatch((0.02, y - 0.03), 0.26, 0.06, boxstyle="round,pad=0.005",
                                            facecolor=BLUE, edgecolor="none"))
                ax.text(0.15, y, SERVICE_NAMES.get(n, n), color="white", ha="center", va="center", fontsize=8)
            for n, y in ytgt.items():
                ax.add_patch(FancyBboxPatch((0.72, y - 0.03), 0.26, 0.06, boxstyle="round,pad=0.005",
                                            facecolor=TEAL, edgecolor="none"))
                ax.text(0.85, y, SERVICE_NAMES.get(n, n), color="white", ha="center", va="center", fontsize=8)
            top = shown["clients"].max()
            for r in shown.itertuples():
                y0, y1 = ysrc[r.from_service], ytgt[r.to_service]
                ax.add_patch(FancyArrowPatch((0.29, y0), (0.71, y1), arrowstyle="-|>", mutation_scale=10,
                                             linewidth=0.8 + 5 * s.plot_value(r.clients) / s.plot_value(top),
                                             color=GREY, alpha=0.55, connectionstyle="arc3,rad=0.0"))
                label = s.count(r.clients, f"pathway_transitions/{r.from_service}>{r.to_service}")
                ax.text(0.5, (y0 + y1) / 2 + 0.012, label, fontsize=7.5, ha="center", color=BLUE,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none"))
        else:
            ax.text(0.5, 0.5, "Yhtäkään siirtymää ei ole vähintään viidellä asiakkaalla.", ha="center", color=GREY)
        variants = self.q("SELECT * FROM ind.pathway_variants ORDER BY rank")
        cohort = int(variants["clients"].sum()) if len(variants) else 0
        top_variants = variants[variants["clients"] >= s.threshold].head(8)
        other = cohort - int(top_variants["clients"].sum()) if len(variants) else 0
        rows = [[textwrap.shorten(" → ".join(SERVICE_NAMES.get(p, p) for p in v.split(" > ")), 78),
                 s.count(c, f"pathway_variants/{v}/clients"), s.share(c, cohort, f"pathway_variants/{v}/share")]
                for v, c in zip(top_variants["variant"], top_variants["clients"])]
        if len(variants):
            rows.append(["Muut polut (harvinaisemmat yhdistetty)", s.count(other, "pathway_variants/other/clients"),
                         s.share(other, cohort, "pathway_variants/other/share")])
        fig.text(0.08, 0.47, "Yleisimmät kokonaiset palvelupolut (järjestyksessä alkamispäivän mukaan)",
                 fontsize=10, color=GREY)
        self.table(fig, [0.08, 0.10, 0.84, 0.35], ["Palvelupolku", "Asiakkaita", "Osuus"], rows,
                   [0.7, 0.15, 0.15], size=8)
        self.finish(fig)

    def employment(self) -> None:
        s = self.sup
        fig = self.page("Työllistyminen")
        eo = self.q("SELECT * FROM ind.employment_outcomes ORDER BY window_months")
        cats = [("employed_open_market", "Avoimet työmarkkinat", TEAL), ("subsidised", "Palkkatuettu työ", "#8ab17d"),
                ("in_services", "Työllistymistä edistävä palvelu", "#e9c46a"), ("unemployed", "Työtön", ORANGE),
                ("other", "Muu tai ei tietoa", "#b0b7bf")]
        fig.text(0.08, 0.915, "TTK-kohortin työmarkkina-asema 0, 6 ja 12 kk arvioinnin alusta", fontsize=10,
                 color=GREY)
        ax = fig.add_axes([0.12, 0.66, 0.80, 0.23])
        table_rows = []
        for i, r in enumerate(eo.itertuples()):
            values = [int(getattr(r, c)) for c, _, _ in cats]
            safe = s.plot_values(values)
            left = 0
            for (c, label, color), v in zip(cats, safe):
                ax.barh(i, v, left=left, color=color, label=label if i == 0 else None)
                left += v
            cell = f"employment_outcomes/window={r.window_months}/"
            table_rows.append([f"{r.window_months} kk", s.count(r.clients, cell + "clients"),
                               *s.row(values, [cell + c for c, _, _ in cats]),
                               s.share(r.employed_open_market, r.clients, cell + "employed_open_market_share")])
        ax.set_yticks(range(len(eo)), [f"{w} kk" for w in eo["window_months"]], fontsize=9)
        ax.invert_yaxis()
        ax.set_xlabel("asiakkaita (peitetyt solut jätetty pois kuvasta)", fontsize=8)
        ax.legend(fontsize=7.5, frameon=False, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.22))
        drawn = any(sum(s.plot_values([int(getattr(r, c)) for c, _, _ in cats])) for r in eo.itertuples())
        self.axis(ax, drawn, horizontal=True)
        self.table(fig, [0.08, 0.42, 0.84, 0.16],
                   ["Seuranta", "Seurattuja", "Avoimet", "Palkkatuki", "Palvelu", "Työtön", "Muu", "Avoimet %"],
                   table_rows, [0.12, 0.13, 0.11, 0.12, 0.11, 0.11, 0.1, 0.14], size=8)
        cp = self.q("SELECT * FROM ind.coaching_placements ORDER BY window_months")
        fig.text(0.08, 0.36, "IPS-valmennuksen työllistymiset ensimmäisen valmennuksen alusta", fontsize=10, color=GREY)
        cell = "coaching_placements/window={}/{}".format
        rows = [[f"{r.window_months} kk", s.count(r.clients, cell(r.window_months, "clients")),
                 s.count(r.placed, cell(r.window_months, "placed")),
                 s.share(r.placed, r.clients, cell(r.window_months, "placed_share")),
                 s.statistic(r.median_days_to_placement, r.placed, cell(r.window_months, "median_days_to_placement"),
                             0, "vrk")] for r in cp.itertuples()]
        self.table(fig, [0.08, 0.22, 0.84, 0.12],
                   ["Ikkuna", "Valmennettuja", "Työllistyi", "Osuus", "Aika työhön (mediaani)"], rows,
                   [0.14, 0.2, 0.18, 0.18, 0.3])
        self.closing_note(fig, 'employment')

    def capacity(self) -> None:
        s = self.sup
        fig = self.page("Toimintakyvyn muutos")
        mc = self.q("SELECT * FROM ind.measure_change ORDER BY instrument")
        cell = "measure_change/{}/{}".format
        rows = [[INSTRUMENTS.get(r.instrument, r.instrument), s.count(r.clients, cell(r.instrument, "clients")),
                 *(s.statistic(getattr(r, m), r.clients, cell(r.instrument, m), 1)
                   for m in ("mean_baseline", "mean_end", "mean_change"))] for r in mc.itertuples()]
        self.table(fig, [0.08, 0.70, 0.84, 0.2], ["Mittari", "Asiakkaita", "Alussa", "Lopussa", "Muutos"], rows,
                   [0.46, 0.13, 0.13, 0.13, 0.15])
        shown = [r for r in mc.itertuples() if r.clients >= s.threshold]
        ax = fig.add_axes([0.12, 0.30, 0.78, 0.32])
        if shown:
            x = range(len(shown))
            ax.bar([i - 0.2 for i in x], [r.mean_baseline for r in shown], 0.4, color=GREY, label="Alussa (ALKU)")
            ax.bar([i + 0.2 for i in x], [r.mean_end for r in shown], 0.4, color=BLUE, label="Lopussa (LOPPU)")
            ax.set_xticks(list(x), [r.instrument for r in shown])
            ax.legend(fontsize=8, frameon=False)
            ax.set_ylabel("keskiarvo", fontsize=9)
        self.axis(ax, bool(shown))
        self.closing_note(fig, 'capacity')

    def savings(self) -> None:
        s = self.sup
        fig = self.page("Kustannussäästöt kunnille")
        cs = self.q("SELECT * FROM ind.cost_savings")
        names = {"TMTU": "Työmarkkinatuen kuntaosuus", "TOTU": "Perustoimeentulotuen kuntaosuus",
                 "TOTAL": "Yhteensä"}
        rows = [[names[r.benefit], s.count(r.clients, f"cost_savings/{r.benefit}/clients"),
                 *(s.euros(getattr(r, m), r.clients, f"cost_savings/{r.benefit}/{m}")
                   for m in ("before_eur", "after_eur", "saving_eur"))] for r in cs.itertuples()]
        fig.text(0.08, 0.915, "Havaittu (ei ohjelman vaikutus): kunnan maksuosuus 12 kk ennen ja jälkeen TTK:n alun",
                 fontsize=10, color=GREY)
        self.table(fig, [0.08, 0.78, 0.84, 0.12], ["Etuus", "Asiakkaita", "Ennen", "Jälkeen", "Vähennys"], rows,
                   [0.36, 0.13, 0.17, 0.17, 0.17])
        saving, interval = self.attributable_saving()
        fig.text(0.08, 0.755, f"TTK:n ansiota (vaikutusarvio): säästö {saving}  ({interval})",
                 fontsize=10, weight="bold", color=BLUE)
        ax = fig.add_axes([0.14, 0.50, 0.76, 0.21])
        parts = cs[cs["benefit"] != "TOTAL"]
        drawn = bool(len(parts)) and int(parts["clients"].max()) >= s.threshold
        if drawn:
            x = range(len(parts))
            ax.bar([i - 0.2 for i in x], [float(v) for v in parts["before_eur"]], 0.4, color=GREY, label="12 kk ennen")
            ax.bar([i + 0.2 for i in x], [float(v) for v in parts["after_eur"]], 0.4, color=TEAL, label="12 kk jälkeen")
            ax.set_xticks(list(x), [names[b] for b in parts["benefit"]], fontsize=8)
            ax.legend(fontsize=8, frameon=False)
            ax.set_ylabel("euroa", fontsize=9)
        self.axis(ax, drawn)
        sc = self.q("SELECT * FROM ind.savings_scenario").iloc[0]
        fig.text(0.08, 0.43, "Suunnitelman laskennallinen säästöarvio", fontsize=12, weight="bold", color=BLUE)
        rows = [["Pitkäaikaistyöttömiä alueella", fmt.number(sc["long_term_unemployed"])],
                ["Oletettu työllistymisaste", fmt.percent(sc["employment_rate"], 0)],
                ["Työmarkkinatuen kuntaosuus / henkilötyövuosi", fmt.euros(sc["municipal_labour_market_subsidy_eur"])],
                ["Perustoimeentulotuki / henkilötyövuosi", fmt.euros(sc["social_assistance_eur"])],
                ["Säästö vuodessa", fmt.euros(sc["annual_saving_eur"])]]
        self.table(fig, [0.08, 0.20, 0.84, 0.2], ["Parametri", "Arvo"], rows, [0.7, 0.3])
        self.paragraph(fig, 0.08, 0.16,
                       "Säästöarvio = pitkäaikaistyöttömät × työllistymisaste × (työmarkkinatuen kuntaosuus + "
                       "toimeentulotuki). Parametrit ovat hankesuunnitelmasta ja muutettavissa asetuksista. "
                       "Ennen–jälkeen-muutos ei ole ohjelman vaikutus: moni olisi työllistynyt muutenkin. "
                       "Vaikutusarvio = vaikutus kunnan kustannuksiin asiakasta kohden verrattuna samankaltaisiin "
                       "työnhakijoihin × verratut TTK:n aloittaneet (sivu Vaikuttavuus).",
                       width=95, size=8.5)
        self.finish(fig)

    def effect_text(self, outcome: str) -> str:
        """An estimate with its unit and sign, or hidden when fewer than the threshold are matched."""
        est, _ = self.impact()
        if outcome not in est.index:
            return HIDDEN
        _, unit, scale = OUTCOMES[outcome]
        r = est.loc[outcome]
        value = None if r["att"] is None else r["att"] * scale
        text = self.sup.statistic(value, r["treated"], f"impact_estimates/{outcome}", 0 if unit == "€" else 1, unit)
        return ("+" if text != HIDDEN and value > 0 else "") + text

    def effects(self) -> None:
        s = self.sup
        fig = self.page("Vaikuttavuus: mitä TTK muutti")
        est, shown = self.impact()
        n = int(est["treated"].max()) if len(est) else 0
        unmatched = int(est["unmatched_treated"].max()) if len(est) else 0
        fig.text(0.08, 0.915, "Vaikutusarviot 95 %:n luottamusväleineen (TTK:n aloittaneet − verrokit)",
                 fontsize=10, color=GREY)
        for i, (outcome, (label, unit, scale)) in enumerate(OUTCOMES.items()):
            y = 0.85 - i * 0.055
            fig.text(0.08, y + 0.012, label, fontsize=8.5)
            ax = fig.add_axes([0.46, y, 0.30, 0.04])
            ax.set_yticks([])
            ax.spines[["top", "right", "left"]].set_visible(False)
            ax.axvline(0, color=GREY, linewidth=0.8, linestyle="--")
            if outcome in est.index and shown[outcome]:
                r = est.loc[outcome]
                att, low, high = (float(r[c]) * scale for c in ("att", "ci_low", "ci_high"))
                ax.plot([low, high], [0, 0], color=BLUE, linewidth=2)
                ax.plot([att], [0], "o", color=ORANGE, markersize=6)
                pad = (high - low) * 0.15 or 1
                ax.set_xlim(min(low, 0) - pad, max(high, 0) + pad)
                ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
                    lambda v, _: fmt.number(v, 0 if float(v).is_integer() else 1)))
                ax.tick_params(axis="x", labelsize=7)
                text = (f"{self.effect_text(outcome)}\n({fmt.number(low, 0 if unit == '€' else 1)} … "
                        f"{fmt.number(high, 0 if unit == '€' else 1)})")
            else:
                ax.set_xticks([])
                self.effect_text(outcome)  # records the estimate as suppressed in the release log
                text = "ei arviota\n(alle 5 verrattavaa)"
            fig.text(0.78, y + 0.005, text, fontsize=7.5, va="bottom")
        rows = []
        for outcome, (label, unit, scale) in OUTCOMES.items():
            if outcome not in est.index:
                continue
            r, ok = est.loc[outcome], shown[outcome]
            decimals = 0 if unit == "€" else 1
            value = lambda v: fmt.number(float(v) * scale, decimals) if ok and v is not None else HIDDEN  # noqa: E731
            rows.append([label, value(r["treated_mean"]), value(r["control_mean"]), value(r["att"]),
                         f"{value(r['ci_low'])} … {value(r['ci_high'])}" if ok else HIDDEN])
        self.table(fig, [0.08, 0.52, 0.84, 0.13], ["Tulos (yksikkö: %, kk tai €)", "TTK", "Verrokit", "Ero", "95 %:n väli"],
                   rows, [0.40, 0.12, 0.12, 0.12, 0.24], size=7.5)
        fig.text(0.08, 0.49, "Avoimessa työssä olevien osuus kuukausittain TTK:n aloituskuukaudesta (0)",
                 fontsize=10, color=GREY)
        es = self.q("SELECT * FROM ind.impact_event_study ORDER BY relative_month")
        ax = fig.add_axes([0.12, 0.27, 0.80, 0.19])
        points = es[[t is not None and t >= s.threshold for t in es["treated"]]] if len(es) else es
        if len(points):
            ax.plot(points["relative_month"], [v * 100 for v in points["treated_share"]], "-o", color=BLUE,
                    markersize=3, label="TTK:n aloittaneet")
            ax.plot(points["relative_month"], [v * 100 for v in points["control_share"]], "-o", color=GREY,
                    markersize=3, label="verrokit (samankaltaiset työnhakijat)")
            ax.axvline(0, color=ORANGE, linewidth=0.8, linestyle="--")
            ax.set_xlabel("kuukautta aloituksesta", fontsize=8)
            ax.set_ylabel("% avoimessa työssä", fontsize=8)
            ax.tick_params(labelsize=7.5)
            ax.legend(fontsize=7.5, frameon=False)
        self.axis(ax, bool(len(points)))
        self.closing_note(fig, "effects", treated=s.count(n, "impact_estimates/treated"),
                          unmatched=s.count(unmatched, "impact_estimates/unmatched_treated"))

    def data_quality(self) -> None:
        s = self.sup
        fig = self.page("Liite: aineiston laatu")
        dq = self.q("SELECT partner, period, status FROM ind.data_quality ORDER BY partner, period")
        fig.text(0.08, 0.915, "Toimitukset kumppaneittain ja kuukausittain", fontsize=10, color=GREY)
        ax = fig.add_axes([0.2, 0.74, 0.74, 0.16])
        if len(dq):
            periods = sorted(dq["period"].unique())
            partners = [p for p in PARTNERS if p in set(dq["partner"])]
            import numpy as np
            grid = np.zeros((len(partners), len(periods)))
            for r in dq.itertuples():
                grid[partners.index(r.partner), periods.index(r.period)] = 1 if r.status == "loaded" else 2
            cmap = matplotlib.colors.ListedColormap(["#f1f3f5", TEAL, ORANGE])
            ax.imshow(grid, aspect="auto", cmap=cmap, vmin=0, vmax=2)
            ax.set_yticks(range(len(partners)), [PARTNERS[p] for p in partners], fontsize=7.5)
            step = max(1, len(periods) // 12)
            ax.set_xticks(range(0, len(periods), step), [fmt.period(p) for p in periods[::step]], fontsize=7,
                          rotation=45)
            ax.set_title("vihreä = ladattu, oranssi = hylätty, harmaa = ei toimitusta", fontsize=7.5, color=GREY)
        rej = self.q("SELECT partner, period, reason, previous_version_kept FROM ind.data_quality "
                     "WHERE status = 'rejected' ORDER BY partner, period")
        fig.text(0.08, 0.64, "Hylätyt toimitukset", fontsize=10, color=GREY)
        rows = [[PARTNERS.get(r.partner, r.partner), fmt.period(r.period), textwrap.shorten(r.reason or "", 70),
                 "kyllä" if r.previous_version_kept else "ei"] for r in rej.head(8).itertuples()]
        self.table(fig, [0.08, 0.47, 0.84, 0.16], ["Kumppani", "Jakso", "Syy", "Aiempi käytössä"], rows,
                   [0.16, 0.1, 0.6, 0.14], size=7)
        qs = self.q("SELECT partner, reason, rows FROM ind.quarantine_summary ORDER BY partner, rows DESC")
        fig.text(0.08, 0.42, "Karanteeniin siirretyt rivit (syy ja määrä)", fontsize=10, color=GREY)
        rows = [[PARTNERS.get(r.partner, r.partner), textwrap.shorten(r.reason, 62),
                 s.count(r.rows, f"quarantine_summary/{r.partner}/{_digest(r.reason)}")]
                for r in qs.head(10).itertuples()]
        self.table(fig, [0.08, 0.2, 0.84, 0.21], ["Kumppani", "Syy", "Rivejä"], rows, [0.2, 0.65, 0.15], size=7)
        totals = self.q("SELECT sum(rows_read) AS r, sum(rows_quarantined) AS q FROM ind.data_quality WHERE status = 'loaded'")
        hidden = self.q("SELECT coalesce(sum(codes_redacted_in_names + codes_redacted_in_values), 0) AS n, "
                        "(SELECT count(*) FROM kb.landing_ignored) AS ignored FROM ind.data_quality")
        y = self.paragraph(fig, 0.08, 0.18,
                           f"Luettuja rivejä {s.count(totals['r'][0] or 0, 'data_quality/rows_read')}, karanteeniin "
                           f"{s.count(totals['q'][0] or 0, 'data_quality/rows_quarantined')}. "
                           "Suostumusta odottavia ohjelman asiakkaita (tiedot pidätetty): "
                           f"{s.count(self.info['awaiting_consent'], 'build_info/awaiting_consent')}. Suostumuksensa "
                           "peruneiden tiedot on poistettu kaikista tauluista. Tiedostonimistä ja "
                           "vapaatekstikentistä poistettuja henkilötunnuksia "
                           f"{s.count(hidden['n'][0], 'data_quality/codes_redacted')}; "
                           "toimitusalueelta ohitettuja muita tiedostoja ja kansioita "
                           f"{s.count(hidden['ignored'][0], 'data_quality/landing_ignored')}.{self.outside_text()}",
                           width=95, size=8.5)
        self.paragraph(fig, 0.08, y, self.differencing_text(), width=110, size=7.5,
                       color=ORANGE if self.flags else GREY)
        self.finish(fig)

    def outside_text(self) -> str:
        """Clients whose latest municipality is outside the region: kept in every figure, counted here."""
        try:
            n = self.q("SELECT coalesce(sum(clients), 0) AS n FROM ind.clients_outside_region")["n"][0]
        except duckdb.CatalogException:  # a knowledge base built before regions
            return ""
        if self.con.sql("SELECT name FROM kb.region").fetchall()[0][0] is None:
            return ""
        return (f" Henkilöitä, joiden viimeisin kotikunta on alueen ulkopuolella: "
                f"{self.sup.count(int(n), 'data_quality/clients_outside_region')} (mukana kaikissa luvuissa).")

    def differencing_text(self) -> str:
        """The differencing check against the previous release, for the appendix. Every page with
        numbers is drawn before the appendix, so the flags here are those the release log records."""
        self.flags = release_log.differencing(self.previous, self.sup.cells, self.sup.threshold)
        if self.previous is None:
            return "Erotteluriski: tämä on ensimmäinen julkaisu; aiempaa julkaisua, johon verrata, ei ole."
        if not self.flags:
            return ("Erotteluriski: yksikään luku ei siirtynyt näytetyn ja peitetyn välillä edelliseen "
                    f"julkaisuun verrattuna alle {self.sup.threshold} henkilön muutoksella.")
        shown = ", ".join(f.cell for f in self.flags[:3]) + (" …" if len(self.flags) > 3 else "")
        return (f"Erotteluriski: {len(self.flags)} lukua siirtyi näytetyn ja peitetyn välillä edelliseen "
                f"julkaisuun verrattuna alle {self.sup.threshold} henkilön muutoksella, joten julkaisujen "
                f"vertailu voi paljastaa yksittäisiä henkilöitä. Tarkista ennen jakelua (kaikki julkaisulokissa): {shown}.")

    def methods(self) -> None:
        fig = self.page("Menetelmät ja määritelmät")
        text = (
            "Tietopohja. Kumppanien kuukausitoimitukset luetaan sovittujen tietosisältöjen mukaan. Henkilötunnus "
            "muutetaan ensimmäisessä vaiheessa avaimelliseksi tiivisteeksi (HMAC-SHA256); tunnusta ei tallenneta "
            "mihinkään. Virheelliset rivit siirretään karanteeniin syineen, ja sama tietue päivittyy myöhemmän "
            "toimituksen tiedoilla.\n\n"
            "Ohjelman asiakas = henkilö, jolla on TTK-arviointi- tai IPS-valmennusjakso. Asiakkaan tiedot ovat "
            "mukana vain voimassa olevalla suostumuksella; perutun suostumuksen jälkeen henkilön tiedot poistetaan "
            "kokonaan. Vertailuryhmä = TE-, Kela-, TYP- ja kuntatiedoissa esiintyvät muut henkilöt.\n\n"
            "TTK-kohortti = ohjelman asiakkaat, joilla on TTK-jakso; indeksipäivä on ensimmäisen TTK-jakson alku. "
            "Tilannepäivä (as_of) = viimeisimmän TE-toimituksen kuukauden viimeinen päivä; seuranta-ikkunat, jotka "
            "päättyisivät sen jälkeen, jätetään pois.\n\n"
            "Työmarkkina-asema päivänä = TE-tilajakso, joka kattaa päivän; päällekkäisistä myöhemmin alkanut "
            "ratkaisee. Palvelupolku = asiakkaan jaksot alkamispäivän ja palvelun mukaan järjestettynä. "
            "Toimintakyky: ensimmäinen alkumittaus ja viimeinen loppumittaus. Kustannukset: kunnan maksuosuus "
            "työmarkkinatuesta ja perustoimeentulotuesta 12 kk ennen ja jälkeen indeksikuukauden.\n\n"
            "Vaikuttavuus. TTK:n aloittaneita, jotka olivat edeltävänä kuukautena työttömiä ja joiden 12 kk:n "
            "seuranta on päättynyt, verrataan samana kuukautena työttömiin, jotka eivät olleet aloittaneet TTK:ta "
            "tai IPS-valmennusta (samassa solussa: kuukausi, sukupuoli, syntymävuoden viisivuotisryhmä, edeltävän "
            "vuoden työttömyyskuukaudet kolmen kuukauden luokissa). Asema kuukaudessa = tila kuukauden 15. päivänä. "
            "Vaikutus = TTK:n aloittaneen tulos − solun verrokkien keskiarvo, keskiarvona; keskivirhe ottaa "
            "huomioon myös verrokkien vaihtelun. Arviota ei näytetä alle viiden verratun joukosta.\n\n"
            f"Pienten lukujen suojaus. Julkaistavissa luvuissa 1–{self.sup.threshold - 1} henkilön määrät näytetään "
            f"muodossa <{self.sup.threshold}, eikä osuuksia, keskiarvoja, mediaaneja tai summia näytetä alle "
            f"{self.sup.threshold} henkilön joukosta. Jos taulukon rivillä on julkaistu summa, peitetään lisäksi "
            "pienin muu solu, jottei peitettyä lukua voi laskea erotuksena. Kuvissa peitetyt solut jätetään pois.\n\n"
            f"Pyöristys. {self.rounding_text()} Summat pyöristetään erikseen, joten osat eivät välttämättä "
            "täsmää summaan. Osuudet, keskiarvot ja mediaanit lasketaan pyöristämättömistä luvuista. "
            "Jokainen julkaisu kirjataan julkaisulokiin, ja sitä verrataan edelliseen julkaisuun (liite).\n\n"
            "Tarkemmat määritelmät ovat arvioijien tietopohjassa (DuckDB, skeemat kb ja ind; jokaisella taululla "
            "ja sarakkeella on kuvaus), ja jokainen indikaattori on luettavissa omana SQL-tiedostonaan.")
        self.paragraph(fig, 0.08, 0.91, text, width=92, size=9.5)
        self.finish(fig)


def region_label(con) -> str:
    """The region built (kb.region), or for an unnamed region the municipalities its clients live in."""
    from pipelines.regions import label

    try:
        region = _row(con, "SELECT name, title FROM kb.region")
    except duckdb.CatalogException:  # a knowledge base built before regions
        region = None
    codes = [c for (c,) in con.sql("SELECT DISTINCT municipality FROM kb.clients WHERE programme_client "
                                   "AND municipality IS NOT NULL ORDER BY municipality").fetchall()]
    return label(region, codes)


def _digest(text: str) -> str:
    """A short stable id for free text (a quarantine reason) in a cell id."""
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _row(con, sql: str) -> dict:
    rel = con.sql(sql)
    return dict(zip(rel.columns, rel.fetchall()[0]))


def build_report(kb_path: Path, reports_dir: Path, threshold: int | None = None, rounding_base: int | None = None,
                 releases_dir: Path | None = None) -> ReportResult:
    """Write the PDF for the knowledge base at ``kb_path`` and its release record (by default in
    ``releases/`` next to the knowledge base, i.e. ``DATA/releases``); returns path, pages, record.
    ``threshold`` and ``rounding_base`` override the parameters the knowledge base was built with."""
    kb_path, reports_dir = Path(kb_path), Path(reports_dir)
    releases_dir = Path(releases_dir) if releases_dir else kb_path.parent / "releases"
    con = view_answers.connect(kb_path)  # the build's answers of the contract views, when it left them
    try:
        params = {k: float(v) if isinstance(v, Decimal) else v
                  for k, v in _row(con, "SELECT * FROM kb.parameters").items()}
        rules = Rules(int(params["suppression_threshold"] if threshold is None else threshold),
                      int(params.get("rounding_base", 5) if rounding_base is None else rounding_base),
                      bool(params.get("midpoint_rounding", 0)))
        info = _row(con, "SELECT as_of, built_at, key_fingerprint, pipeline_version FROM kb.build_info")
        as_of = info["as_of"]
        reports_dir.mkdir(parents=True, exist_ok=True)
        path = reports_dir / f"{OUTPUT}_{as_of.isoformat() if as_of else 'ei-tilannepaivaa'}.pdf"
        tmp = path.with_suffix(".pdf.tmp")
        previous = release_log.previous_release(releases_dir, OUTPUT)
        plt.rcParams.update({"font.family": "DejaVu Sans", "axes.titlesize": 9})
        with PdfPages(tmp, metadata={"Title": f"Työkykyohjelma – {region_label(con)} – ohjausryhmän raportti",
                                     "Author": "tyokyky",
                                     "Subject": f"Tilanne {fmt.date(as_of)}"}) as pdf:
            report = Report(con, pdf, Disclosure(rules), previous)
            for page in (report.cover, report.summary, report.ttk_process, report.pathways, report.employment,
                         report.capacity, report.savings, report.effects, report.data_quality, report.methods):
                page()
            pages = report.pages
        # logged before it is published: no report leaves without its record
        published = path.relative_to(releases_dir.parent) if path.is_relative_to(releases_dir.parent) else path
        record = release_log.record(releases_dir, published, tmp, OUTPUT, info, params, report.sup, report.flags,
                                    previous)
        tmp.replace(path)
    finally:
        con.close()
    return ReportResult(path, pages, record, len(report.flags))
