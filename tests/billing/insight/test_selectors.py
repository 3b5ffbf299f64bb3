"""Every figure of billing's insight sections on the hand-checkable biller of insight_support.py (see its table).

The period is October 2026 ("last month" seen on 2026-11-10); the previous period is September 2026. Each expected
value is worked out by hand in the comment above it.
"""

import datetime as dt

import pytest

from billing.insight.charts import cell_text
from billing.insight.periods import LAST_MONTH, period_make
from billing.insight.report import Money, Ratio
from billing.insight.selectors import insight_report, insight_report_build
from billing.models import Payment

from .insight_support import TODAY, build



@pytest.fixture
def report(db, django_user_model):
    data = build(django_user_model)
    period = period_make(kind=LAST_MONTH, today=TODAY)
    return insight_report_build(biller=data.biller, period=period, today=TODAY)


def figures(report, section):
    return {f.label: (f.value, f.previous) for f in report.section(section).figures}


def rows(report, slug):
    return [[cell_text(c) for c in row] for row in report.table(slug).rows]


def test_the_period_is_october_against_september(report):
    assert (report.period.start, report.period.end) == (dt.date(2026, 10, 1), dt.date(2026, 10, 31))
    assert (report.previous.start, report.previous.end) == (dt.date(2026, 9, 1), dt.date(2026, 9, 30))


def test_adoption(report):
    got = figures(report, "adoption")
    # October: bills went out to A1 (B1), A2 (B2), A3 (B3); A4's October bill is void, A5's is a draft → 3.
    # September: A1 (B7) and A4 (B4) → 2.
    assert got["Active accounts"] == (3, 2)
    # Paperless on at the bill's issue date. October: A1 yes (since Sep 1); A2 no (enrolled Oct 10, after its Oct 5
    # bill); A3 no (cancelled Oct 1, bill Oct 20) → 1 of 3. September: A1 yes, A4 yes (cancelled only Oct 1) → 2 of 2.
    assert got["Paperless"] == (Ratio(1, 3), Ratio(2, 2))
    assert cell_text(got["Paperless"][0]) == "33.3%" and cell_text(got["Paperless"][1]) == "100.0%"
    # Autopay on at the issue date. October: A1 no (enrolled Oct 6, after its Oct 5 bill); A2 yes (Oct 1); A3 yes
    # (suspended only on Oct 25, its bill was Oct 20) → 2 of 3. September: A1 not yet; A4 never → 0 of 2.
    assert got["Autopay"] == (Ratio(2, 3), Ratio(0, 2))
    assert cell_text(got["Autopay"][0]) == "66.7%" and cell_text(got["Autopay"][1]) == "0.0%"


def test_adoption_trend_covers_twelve_months(report):
    trend = rows(report, "adoption_trend")
    # Nov 2025 … Oct 2026. Bills went out in June (B8 to A5), August (B9 to A5), September and October only.
    assert [r[0] for r in trend] == [f"2025-{m:02d}" for m in (11, 12)] + [f"2026-{m:02d}" for m in range(1, 11)]
    by_month = {r[0]: r[1:] for r in trend}
    assert by_month["2026-06"] == ["1", "0.0%", "0.0%"]
    assert by_month["2026-08"] == ["1", "0.0%", "0.0%"]
    assert by_month["2026-09"] == ["2", "100.0%", "0.0%"]
    assert by_month["2026-10"] == ["3", "33.3%", "66.7%"]
    assert by_month["2026-01"] == ["0", "—", "—"]  # no bill, nothing to divide by


def test_collections(report):
    got = figures(report, "collections")
    # Billed in October: B1 100.00 + B2 200.00 + B3 300.00 (B5 void, B6 draft) = 600.00; September: B4 400.00 +
    # B7 80.00 = 480.00.
    assert got["Billed"] == (Money(60000, "USD"), Money(48000, "USD"))
    # Collected in October: P1 100.00 + P2 50.00 + P5 30.00 = 180.00 (the failed P4, P6, P7 do not count);
    # September: P3 80.00.
    assert got["Collected"] == (Money(18000, "USD"), Money(8000, "USD"))
    # 180 / 600 = 30.0%; 80 / 480 = 16.67 → 16.7%.
    assert [cell_text(v) for v in got["Collected ÷ billed"]] == ["30.0%", "16.7%"]
    # Guest: P1 of P1, P2, P5 → 1 of 3 = 33.3%; September: P3 was staff → 0 of 1.
    assert got["Guest payments"] == (Ratio(1, 3), Ratio(0, 1))
    # Refunded: R1 10.00 on Oct 15 (R2 failed); nothing in September.
    assert got["Refunded"] == (Money(1000, "USD"), Money(0, "USD"))


def test_collections_by_channel_lists_every_channel_of_the_model(report):
    table = rows(report, "collections_by_channel")
    # Share of October's 180.00: guest 100 → 55.6%, portal 50 → 27.8%, autopay 30 → 16.7%, staff 0.
    assert table[:4] == [
        ["Guest, online", "1", "$100.00", "55.6%", "$0.00"],
        ["Signed-in payer", "1", "$50.00", "27.8%", "$0.00"],
        ["Autopay", "1", "$30.00", "16.7%", "$0.00"],
        ["Recorded by staff", "0", "$0.00", "0.0%", "$80.00"],
    ]
    # Channels other work adds to the model appear on their own, with nothing collected here.
    assert [r[0] for r in table] == [str(label) for _value, label in Payment.Channel.choices]
    assert all(r[1:] == ["0", "$0.00", "0.0%", "$0.00"] for r in table[4:])


def test_collections_by_method(report):
    by_method = {r[0]: r[1:] for r in rows(report, "collections_by_method")}
    # October: all three by card (180.00); September's 80.00 was cash.
    assert by_method["Card"] == ["3", "$180.00", "100.0%", "$0.00"]
    assert by_method["Cash"] == ["0", "$0.00", "0.0%", "$80.00"]
    assert list(by_method) == [str(label) for _value, label in Payment.Method.choices]


def test_receivables(report):
    got = figures(report, "receivables")
    # Still owed on open and written-off bills on 2026-11-10: B2 150.00, B3 270.00, B4 400.00, B8 60.00, B9 10.00
    # = 890.00 (B1, B7 paid; B5 void; B6 draft).
    assert got["Outstanding today"] == (Money(89000, "USD"), None)
    # DSO: 890.00 ÷ 600.00 billed × 31 days of October = 45.983 → 45.98 days.
    assert cell_text(got["Days sales outstanding (DSO)"][0]) == "45.98"
    # B3 due Nov 15: current. B2 due Oct 25: 16 days. B4 due Sep 25: 46 days. B9 due Aug 20: 82 days.
    # B8 due Jun 20: 143 days. Shares of 890: 270 → 30.3%, 150 → 16.9%, 400 → 44.9%, 10 → 1.1%, 60 → 6.7%.
    assert rows(report, "receivables_aging") == [
        ["Current (not yet due)", "1", "$270.00", "30.3%"],
        ["1–30 days past due", "1", "$150.00", "16.9%"],
        ["31–60 days past due", "1", "$400.00", "44.9%"],
        ["61–90 days past due", "1", "$10.00", "1.1%"],
        ["More than 90 days past due", "1", "$60.00", "6.7%"],
    ]


def test_recovery(report):
    got = figures(report, "recovery")
    # The backup card's try 2 on C1 succeeded with 30.00; it was the only backup try.
    assert got["Recovered by the backup card"] == (Money(3000, "USD"), None)
    # A3's enrolment is suspended (since Oct 25, inside October).
    assert got["Autopay enrolments suspended"] == (1, None)
    suspended_note = next(f.note for f in report.section("recovery").figures if f.label.startswith("Autopay enrol"))
    assert "(1 of them suspended in the period)" in suspended_note
    # Attempt 1: C1's soft decline and C2's hard decline → 2 tries, 2 declined, 0%. Attempt 2: C1's backup, paid 30.
    assert rows(report, "recovery_by_attempt") == [
        ["1", "2", "0", "2", "0", "0", "$0.00", "0.0%"],
        ["2", "1", "1", "0", "0", "0", "$30.00", "100.0%"],
    ]
    # C2 ended on a hard decline and failed for good; C1's last decline was soft and it was paid in the end.
    assert rows(report, "recovery_by_decline_class") == [
        ["Hard decline", "1", "0", "1", "0", "0.0%"],
        ["Soft decline", "1", "1", "0", "0", "100.0%"],
    ]


def test_the_report_is_cached_per_biller_and_period(db, django_user_model, django_assert_num_queries):
    data = build(django_user_model)
    period = period_make(kind=LAST_MONTH, today=TODAY)
    first = insight_report(biller=data.biller, period=period, today=TODAY)
    with django_assert_num_queries(0):
        again = insight_report(biller=data.biller, period=period, today=TODAY)
    assert again.section("collections").figures[1].value == first.section("collections").figures[1].value
    other = period_make(kind="this_month", today=TODAY)
    assert insight_report(biller=data.biller, period=other, today=TODAY).period.start == dt.date(2026, 11, 1)
