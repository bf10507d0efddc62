"""Small-cell suppression: primary and secondary."""
from reports import formatting as fmt
from reports.suppression import Suppressor

S = Suppressor(5)


def test_counts():
    assert [S.count(n) for n in (0, 1, 4, 5, 1234)] == ["0", "<5", "<5", "5", "1 234"]


def test_shares_means_and_sums_need_five_persons():
    assert S.share(3, 4) == "–" and S.share(4, 100) == "–" and S.share(10, 40) == "25,0 %"
    assert S.statistic(12.345, 4) == "–" and S.statistic(12.345, 5) == "12,3"
    assert S.euros(1000, 4) == "–" and S.euros(1234.5, 5) == "1 234 €"


def test_secondary_suppression_protects_a_single_small_cell():
    # total 20 published: hiding only the 3 would give it away as 20 − 7 − 10
    assert S.row([3, 7, 10]) == ["<5", "<5", "10"]
    assert S.row([0, 3, 10, 7]) == ["0", "<5", "10", "<5"]
    assert S.row([2, 3, 10]) == ["<5", "<5", "10"]  # two hidden cells already protect each other
    assert S.row([5, 6]) == ["5", "6"]
    assert S.row([3, 0, 0]) == ["<5", "<5", "0"]  # nothing non-zero left: hide a zero
    assert S.plot_values([3, 7, 10]) == [0, 0, 10]


def test_threshold_is_configurable():
    assert Suppressor(10).count(7) == "<10" and Suppressor(3).count(4) == "4"


def test_finnish_formats():
    import datetime as dt
    assert fmt.number(1234.5, 1) == "1 234,5" and fmt.percent(0.123) == "12,3 %"
    assert fmt.date(dt.date(2022, 12, 31)) == "31.12.2022" and fmt.euros(1230460) == "1 230 460 €"
