"""Disclosure control: suppression (primary and secondary), rounding, and the cells it records."""
import pytest

from reports import formatting as fmt
from reports.disclosure import Disclosure, Rules

S = Disclosure(Rules(threshold=5, rounding_base=0))  # suppression alone


def counts(d: Disclosure, values):
    return [d.count(n, cell=f"c{i}") for i, n in enumerate(values)]


def test_counts():
    assert counts(S, (0, 1, 4, 5, 1234)) == ["0", "<5", "<5", "5", "1 234"]


def test_rounding_to_the_nearest_five_after_suppression():
    d = Disclosure(Rules(threshold=5, rounding_base=5))
    values = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 1234, 1_000_003)
    assert counts(d, values) == ["0", "<5", "<5", "<5", "<5", "5", "5", "5", "10", "10", "15", "1 235",
                                 "1 000 005"]
    status = [d.cells[f"c{i}"].status for i in range(len(values))]
    assert status == ["exact", "suppressed", "suppressed", "suppressed", "suppressed", "exact", "rounded",
                      "rounded", "rounded", "rounded", "rounded", "rounded", "rounded"]
    assert [d.cells[f"c{i}"].persons for i in range(len(values))] == list(values)  # exact, kept unpublished


def test_midpoint_six_rounding_as_opensafely():
    r = Rules(threshold=8, rounding_base=6, midpoint_rounding=True)
    assert [r.round(n) for n in (0, 1, 4, 5, 6, 7, 8, 12, 13, 18, 19, 1234)] == [0, 3, 3, 3, 3, 9, 9, 9, 15, 15, 21,
                                                                                 1233]
    d = Disclosure(r)
    assert counts(d, (0, 1, 4, 5, 6, 7, 8, 1234)) == ["0", "<8", "<8", "<8", "<8", "<8", "9", "1 233"]


def test_a_small_threshold_never_rounds_a_count_to_zero():
    d = Disclosure(Rules(threshold=2, rounding_base=5))
    assert counts(d, (1, 2, 3)) == ["<2", "5", "5"]


def test_shares_means_and_sums_come_from_exact_numbers_and_need_five_persons():
    d = Disclosure(Rules(threshold=5, rounding_base=5))
    assert d.share(3, 4, "a") == "–" and d.share(4, 100, "b") == "–" and d.share(10, 40, "c") == "25,0 %"
    assert d.share(6, 7, "d") == "85,7 %"  # 6/7, not the rounded 5/5
    assert d.statistic(12.345, 4, "e") == "–" and d.statistic(12.345, 5, "f") == "12,3"
    assert d.euros(1000, 4, "g") == "–" and d.euros(1234.5, 5, "h") == "1 234 €"
    assert d.cells["a"].status == "suppressed" and d.cells["d"].status == "exact" and d.cells["d"].persons == 7


def test_secondary_suppression_protects_a_single_small_cell():
    def row(values, rounding_base=0):
        return Disclosure(Rules(5, rounding_base)).row(values, [f"r{i}" for i in range(len(values))])
    # total 20 published: hiding only the 3 would give it away as 20 − 7 − 10
    assert row([3, 7, 10]) == ["<5", "<5", "10"]
    assert row([0, 3, 10, 7]) == ["0", "<5", "10", "<5"]
    assert row([2, 3, 10]) == ["<5", "<5", "10"]  # two hidden cells already protect each other
    assert row([5, 6]) == ["5", "6"]
    assert row([3, 0, 0]) == ["<5", "<5", "0"]  # nothing non-zero left: hide a zero
    assert S.plot_values([3, 7, 10]) == [0, 0, 10]
    assert row([3, 7, 12, 8], 5) == ["<5", "<5", "10", "10"]  # suppressed first, the rest rounded
    rounded = Disclosure(Rules(5, 5))
    assert rounded.plot_values([3, 7, 12, 8]) == [0, 0, 10, 10] and rounded.plot_value(4) == 0


def test_a_cell_published_twice_must_show_the_same_number():
    d = Disclosure()
    assert d.count(12, "x") == "10" and d.count(12, "x") == "10"
    with pytest.raises(ValueError, match="'x'"):
        d.count(13, "x")


def test_threshold_is_configurable():
    assert Disclosure(Rules(10, 0)).count(7, "a") == "<10" and Disclosure(Rules(3, 0)).count(4, "a") == "4"


def test_finnish_formats():
    import datetime as dt
    assert fmt.number(1234.5, 1) == "1 234,5" and fmt.percent(0.123) == "12,3 %"
    assert fmt.date(dt.date(2022, 12, 31)) == "31.12.2022" and fmt.euros(1230460) == "1 230 460 €"
