"""/admin/insight/: who sees it, what it shows, its CSV downloads, and a query count that does not grow with bills."""

import csv
import datetime as dt
import io
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.clock import biller_today
from billing.models import Bill, Payment, PaymentAllocation
from tests.billing.insight.insight_support import build
from tests.factories import BillerFactory, CustomerAccountFactory
from tests.staff_support import staff_login, staff_user

INSIGHT = "/admin/insight/"



@pytest.fixture
def roles(db):
    call_command("setup_roles", stdout=StringIO())


@pytest.fixture
def clerk_client(client, roles, django_user_model):
    return staff_login(client, staff_user(django_user_model, "clerk@insight.example", "Clerk"))


def october(biller) -> dict:
    return {"biller": biller.pk, "period": "custom", "start": "2026-10-01", "end": "2026-10-31"}


def test_the_url_is_the_admin_insight_page():
    assert reverse("billing_insight") == INSIGHT


def test_clerk_and_billing_admin_see_the_page(client, roles, django_user_model):
    data = build(django_user_model)
    for email, group in (("clerk@insight.example", "Clerk"), ("boss@insight.example", "Billing admin")):
        staff_login(client, staff_user(django_user_model, email, group))
        response = client.get(INSIGHT, october(data.biller))
        assert response.status_code == 200
        page = response.content.decode()
        assert "Collected by channel" in page and "Outstanding by age" in page
        client.logout()


def test_admin_index_links_to_the_page_for_staff_who_may_see_it(clerk_client):
    assert INSIGHT in clerk_client.get(reverse("admin:index")).content.decode()


def test_anonymous_and_payers_get_nothing(client, db, django_user_model):
    data = build(django_user_model)
    for url in (INSIGHT, INSIGHT + "payments.csv", INSIGHT + "deposits.csv"):
        response = client.get(url, {**october(data.biller), "date": "2026-10-10"})
        assert response.status_code == 302 and "/login" in response["Location"]
    payer = django_user_model.objects.create_user(email="payer@insight.example", password="pw-Payer-123")
    client.force_login(payer)
    for url in (INSIGHT, INSIGHT + "payments.csv", INSIGHT + "deposits.csv"):
        response = client.get(url, {**october(data.biller), "date": "2026-10-10"})
        assert response.status_code == 302 and "$" not in response.content.decode()


def test_staff_without_the_permission_are_refused(client, roles, django_user_model):
    data = build(django_user_model)
    staff_login(client, staff_user(django_user_model, "nobody@insight.example"))
    assert client.get(INSIGHT, october(data.biller)).status_code == 403
    assert client.get(INSIGHT + "payments.csv", {"biller": data.biller.pk, "date": "2026-10-10"}).status_code == 403


def test_page_shows_the_figures_with_notes_charts_and_tables(clerk_client, django_user_model):
    data = build(django_user_model)
    page = clerk_client.get(INSIGHT, october(data.biller)).content.decode()
    # Billed in October 600.00, collected 180.00 (insight_support.py's table).
    assert "$600.00" in page and "$180.00" in page
    assert "Paperless: active accounts that had paperless e-bills on" in page
    # Every chart is an SVG with a title and a description, and no script anywhere on the page.
    charts = page.count('<svg xmlns="http://www.w3.org/2000/svg" class="insight-chart" role="img"')
    assert charts >= 5
    assert charts == page.count('-title">') == page.count('-desc">')
    assert "<script>" not in page and " style=" not in page


def test_right_to_left_mirrors_the_charts(clerk_client, django_user_model):
    data = build(django_user_model)
    clerk_client.cookies["django_language"] = "ar"
    page = clerk_client.get(INSIGHT, october(data.biller), HTTP_ACCEPT_LANGUAGE="ar").content.decode()
    assert 'dir="rtl"' in page and 'direction="rtl"' in page


def test_bad_custom_range_is_explained(clerk_client, django_user_model):
    data = build(django_user_model)
    response = clerk_client.get(INSIGHT, {**october(data.biller), "start": "2026-10-31", "end": "2026-10-01"})
    assert response.status_code == 200
    assert "The last day comes before the first day." in response.content.decode()


def test_every_table_downloads_as_csv(clerk_client, django_user_model):
    data = build(django_user_model)
    response = clerk_client.get(INSIGHT, {**october(data.biller), "export": "collections_by_channel"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    # Same numbers as the page (see test_selectors.test_collections_by_channel...), in plain decimals.
    assert rows[0] == ["Name", "Payments", "Amount", "Share of amount %", "Previous period"]
    assert rows[1] == ["Guest, online", "1", "100.00", "55.6", "0.00"]
    # The previous period of a 31-day custom range is the 31 days before (Aug 31 – Sep 30): P3's 80.00 in cash.
    assert rows[4] == ["Recorded by staff", "0", "0.00", "0.0", "80.00"]
    assert clerk_client.get(INSIGHT, {**october(data.biller), "export": "nope"}).status_code == 404


def _seed_bills(biller, count: int, today: dt.date):
    """`count` issued bills on as many accounts, half of them paid by a payment this month."""
    accounts = [CustomerAccountFactory.build(biller=biller, account_number=f"Q{i:05d}") for i in range(count)]
    for account in accounts:
        account.holder_name = "Q"
    from billing.models import CustomerAccount

    CustomerAccount.objects.bulk_create(accounts)
    accounts = list(CustomerAccount.objects.filter(biller=biller, account_number__startswith="Q").order_by("pk"))
    bills = Bill.objects.bulk_create(
        Bill(
            biller=biller, account=a, number=f"Q-{i:05d}", status="open", period_start=today, period_end=today,
            issue_date=today.replace(day=1), due_date=today - dt.timedelta(days=i % 120), currency="USD",
            subtotal=1000, total=1000,
        )  # fmt: skip
        for i, a in enumerate(accounts)
    )
    now = dt.datetime.combine(today, dt.time(1), tzinfo=dt.timezone.utc)
    payments = Payment.objects.bulk_create(
        Payment(biller=biller, account=b.account, confirmation_number=f"BP-{biller.slug[:2]}{i:06d}", channel="guest_web",
                method="card", status="succeeded", currency="USD", amount=500, received_at=now)  # fmt: skip
        for i, b in enumerate(bills[::2])
    )
    PaymentAllocation.objects.bulk_create(
        PaymentAllocation(payment=p, bill=b, amount=500) for p, b in zip(payments, bills[::2])
    )


def _page_queries(client, biller) -> int:
    cache.clear()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(INSIGHT, {"biller": biller.pk, "period": "this_month"})
    assert response.status_code == 200
    return len(queries)


def test_query_count_is_the_same_for_10_and_2000_bills(clerk_client, django_assert_max_num_queries):
    small, large = BillerFactory(slug="small", name="Small"), BillerFactory(slug="large", name="Large")
    today = biller_today(small)
    _seed_bills(small, 10, today)
    _seed_bills(large, 2000, today)
    assert Bill.objects.filter(biller=large).count() == 2000
    few = _page_queries(clerk_client, small)
    many = _page_queries(clerk_client, large)
    assert few == many
    cache.clear()
    with django_assert_max_num_queries(25):
        clerk_client.get(INSIGHT, {"biller": large.pk, "period": "this_month"})
    # Within the cache's few minutes, the figures cost no aggregate query at all.
    with CaptureQueriesContext(connection) as cached:
        clerk_client.get(INSIGHT, {"biller": large.pk, "period": "this_month"})
    assert len(cached) < many


def test_posting_file_and_deposit_report_download(clerk_client, django_user_model):
    data = build(django_user_model)
    response = clerk_client.get(INSIGHT + "payments.csv", {"biller": data.biller.pk, "date": "2026-10-12"})
    assert response["Content-Type"].startswith("text/csv") and "payments-2026-10-12" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    # Oct 12: P2 only, 50.00 by card through the portal on B2 (insight_support.py's table).
    assert [(r["record_type"], r["account_number"], r["bill_number"], r["amount"], r["channel"]) for r in rows] == [
        ("payment", "A2", "B2", "50.00", "portal")
    ]
    assert clerk_client.get(INSIGHT + "payments.csv", {"biller": data.biller.pk, "date": "12/10"}).status_code == 400
    deposits = clerk_client.get(INSIGHT + "deposits.csv", october(data.biller))
    days = [r["date"] for r in csv.DictReader(io.StringIO(deposits.content.decode()))]
    assert days == ["2026-10-10", "2026-10-12", "2026-10-15", "2026-10-25"]
