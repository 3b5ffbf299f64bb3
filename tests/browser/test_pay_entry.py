"""A payer on a 360 px phone reaches the payment screen by lookup, or straight from the link in an e-bill."""

import pytest
from django.core.cache import cache
from django.urls import reverse
from playwright.sync_api import expect

from billing.bills import paylinks
from accounts.demo import demo_accounts, demo_seed
from billing.models import Bill
from tests.browser.conftest import axe_serious_violations, has_horizontal_overflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo():
    cache.clear()  # the lookup rate limits live in the cache
    seeded = demo_seed()
    rows = [row for row in demo_accounts(biller=seeded.biller) if row["open_balance_minor"]]
    return seeded.biller, rows


def assert_page_is_clean(page):
    assert not has_horizontal_overflow(page)
    assert axe_serious_violations(page) == []
    assert getattr(page, "csp_violations", []) == []


def test_a_payer_looks_up_a_demo_account_and_sees_the_balance(live_server, phone, demo):
    _biller, rows = demo
    row = next(r for r in rows if len(r["open_bills"]) >= 2)  # the seed has accounts with an overdue and an open bill
    phone.goto(live_server.url + "/")
    phone.get_by_role("link", name="Pay a bill").click()
    expect(phone.get_by_role("heading", name="Pay a bill")).to_be_visible()
    assert_page_is_clean(phone)

    # A wrong postal code first: the message is shown and tied to the form.
    phone.get_by_label("Account number").fill(row["account_number"])
    phone.get_by_label("Postal code of the service address").fill("00000")
    phone.get_by_role("button", name="Find my account").click()
    alert = phone.get_by_role("alert")
    assert "We couldn't find an account with those details" in alert.inner_text()
    assert_page_is_clean(phone)

    phone.get_by_label("Account number").fill(row["account_number"])
    phone.get_by_label("Postal code of the service address").fill(row["postal_code"].lower())
    phone.get_by_role("button", name="Find my account").click()
    phone.wait_for_url(live_server.url + reverse("billing:pay_account"))
    expect(phone.get_by_role("heading", name="Pay your bill")).to_be_visible()
    assert phone.get_by_test_id("balance").inner_text() == row["open_balance"]
    for bill in row["open_bills"]:
        expect(phone.get_by_text(f"Bill {bill['number']}")).to_be_visible()
    assert row["holder_name"] not in phone.content()
    assert_page_is_clean(phone)

    # One screen: what will be charged is shown beside the card, from the start.
    phone.get_by_label("E-mail for your receipt").fill("payer@example.com")
    assert phone.get_by_test_id("quote-total").inner_text() == row["open_balance"]
    expect(phone.get_by_label("Send my future bills by e-mail (paperless)")).to_be_visible()
    expect(phone.locator("#card-element")).to_be_visible()
    assert_page_is_clean(phone)


def test_a_payer_opens_the_pay_link_from_an_e_bill(live_server, phone, demo, settings):
    biller, rows = demo
    row = rows[0]
    bill = Bill.objects.get(biller=biller, number=row["open_bills"][0]["number"])
    settings.SITE_URL = live_server.url
    phone.goto(paylinks.bill_pay_url(bill))
    phone.wait_for_url(live_server.url + reverse("billing:pay_account"))
    assert phone.get_by_test_id("balance").inner_text() == row["open_balance"]
    expect(phone.get_by_text(f"Bill {bill.number}")).to_be_visible()
    assert_page_is_clean(phone)
    # Keyboard users see where they are: the focused control is outlined.
    phone.get_by_label("Another amount").focus()
    phone.keyboard.press("Tab")
    outline = phone.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")


def test_a_broken_pay_link_explains_and_offers_the_lookup(live_server, phone, demo):
    phone.goto(live_server.url + "/pay/b/WzEsMV0:forged/")
    expect(phone.get_by_role("heading", name="This payment link doesn't work")).to_be_visible()
    expect(phone.get_by_label("Account number")).to_be_visible()
    assert_page_is_clean(phone)
