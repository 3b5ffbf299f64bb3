"""A guest pays on a 360 px phone, against localstripe and its stand-in stripe.js: a decline then a good card, and a
3-D Secure card from an e-bill's pay link. Each journey charges exactly once, and no card number reaches our server."""

import time

import pytest
from django.core.cache import cache
from django.urls import reverse

from billing.bills import paylinks
from accounts.demo import demo_accounts, demo_seed
from billing.models import Bill, Payment, WebhookEvent
from tests import stripe_support
from tests.browser.conftest import axe_serious_violations, has_horizontal_overflow
from tests.notice_sending import celery_eager, receipt_emails  # noqa: F401

# celery_eager: the receipt notice is sent by the live server's own thread, as a worker would send it.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_eager")]

CARD_NUMBERS = ("4242424242424242", "4000000000000341", "4000002500003155")


@pytest.fixture
def demo():
    cache.clear()  # the lookup rate limits live in the cache
    seeded = demo_seed()
    rows = [row for row in demo_accounts(biller=seeded.biller) if row["open_balance_minor"]]
    return seeded.biller, rows


@pytest.fixture
def our_requests(phone, live_server):
    """Every request the page sends to our own server, with its body: card numbers must never be among them."""
    seen = []
    phone.on(
        "request",
        lambda request: seen.append((request.method, request.url, request.post_data or ""))
        if request.url.startswith(live_server.url)
        else None,
    )
    return seen


def assert_page_is_clean(page):
    assert not has_horizontal_overflow(page)
    assert axe_serious_violations(page) == []
    assert getattr(page, "csp_violations", []) == []


def enter_card(page, number: str) -> None:
    card = page.locator("#card-element")
    card.get_by_label("number").fill(number)
    card.get_by_label("exp_month").fill("12")
    card.get_by_label("exp_year").fill("34")
    card.get_by_label("cvc").fill("123")
    card.get_by_label("postal_code").fill("92501")


def wait_for_webhooks(intent_ids, *, timeout=8.0) -> None:
    """localstripe delivers about a second after the charge; let both paths finish before the test's data goes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processed = WebhookEvent.objects.filter(processed_at__isnull=False)
        if {e.payload.get("id") for e in processed} >= set(intent_ids):
            return
        time.sleep(0.1)
    raise AssertionError(f"webhooks for {intent_ids} not processed: {list(WebhookEvent.objects.values('type'))}")


def assert_no_card_data_reached_us(requests):
    assert any(url.endswith(reverse("billing:pay_confirm")) for _m, url, _b in requests)
    for _method, url, body in requests:
        for number in CARD_NUMBERS:
            assert number not in body and number not in url


def test_lookup_decline_then_another_card_pays_once(live_server, phone, demo, stripe_live, our_requests, mailoutbox):
    _biller, rows = demo
    row = next(r for r in rows if len(r["open_bills"]) >= 2)
    phone.goto(live_server.url + reverse("billing:pay"))
    phone.get_by_label("Account number").fill(row["account_number"])
    phone.get_by_label("Postal code of the service address").fill(row["postal_code"])
    phone.get_by_role("button", name="Find my account").click()
    phone.wait_for_url(live_server.url + reverse("billing:pay_account"))

    phone.get_by_label("E-mail for your receipt").fill("guest@example.com")
    phone.get_by_label("Send my future bills by e-mail (paperless)").check()
    assert phone.get_by_test_id("quote-total").inner_text() == row["open_balance"]
    pay = phone.get_by_role("button", name=f"Pay {row['open_balance']}")
    assert pay.is_visible()
    assert_page_is_clean(phone)

    enter_card(phone, "4000000000000341")
    pay.click()
    alert = phone.locator("#pay-error")
    alert.wait_for(state="visible")
    assert alert.get_attribute("role") == "alert"
    assert alert.inner_text() == "Your card was declined. Please try again or use a different card."
    assert pay.is_enabled()
    assert phone.url == live_server.url + reverse("billing:pay_account")  # the form stays
    assert_page_is_clean(phone)

    enter_card(phone, "4242424242424242")
    pay.click()
    phone.wait_for_url(f"{live_server.url}/pay/receipt/**")
    assert phone.get_by_role("heading", name="Thank you, your payment is complete").is_visible()
    payment = Payment.objects.get(channel="guest_web", status="succeeded")
    assert phone.get_by_test_id("confirmation-number").inner_text() == payment.confirmation_number
    assert phone.get_by_test_id("receipt-total").inner_text() == row["open_balance"]
    assert phone.get_by_test_id("card-summary").inner_text() == "Visa •••• 4242"
    for bill in row["open_bills"]:
        assert phone.get_by_text(f"Bill {bill['number']}").is_visible()
    offer = phone.get_by_role("region", name="Make next time easier")
    assert offer.is_visible()
    assert "We'll e-mail you a link at guest@example.com to confirm" in offer.inner_text()
    assert_page_is_clean(phone)
    assert_no_card_data_reached_us(our_requests)

    intents = stripe_support.payment_intents(stripe_live)
    assert sorted(i["status"] for i in intents) == ["canceled", "succeeded"]  # the declined one, then the retry
    online = Payment.objects.filter(channel="guest_web")  # the demo seed holds offline payments too
    assert online.filter(status="succeeded").count() == 1 and online.count() == 1
    succeeded = next(i for i in intents if i["status"] == "succeeded")
    assert succeeded["id"] == payment.gateway_payment_id and succeeded["amount"] == payment.total_charged
    wait_for_webhooks([succeeded["id"]])
    payment.refresh_from_db()
    assert payment.status == "succeeded" and payment.receipt_sent_at is not None
    assert [m.to for m in receipt_emails(mailoutbox)] == [["guest@example.com"]]  # one receipt, to the guest


def test_a_pay_screen_served_from_the_page_cache_never_offers_a_paid_balance_again(
    live_server, phone, demo, stripe_live
):
    """The pay screen opened again comes from the page cache (billing/pagecache.py). Once the payer has paid, the
    screen they come back to shows nothing due: never the old balance with its Pay button."""
    from billing import pagecache

    _biller, rows = demo
    row = rows[0]
    phone.goto(live_server.url + reverse("billing:pay"))
    phone.get_by_label("Account number").fill(row["account_number"])
    phone.get_by_label("Postal code of the service address").fill(row["postal_code"])
    phone.get_by_role("button", name="Find my account").click()
    phone.wait_for_url(live_server.url + reverse("billing:pay_account"))
    phone.reload()  # the second view stores the page, the third is served from it
    phone.reload()
    assert any(entry["page"] for entry in pagecache._local.entries.values())
    assert phone.get_by_test_id("quote-total").inner_text() == row["open_balance"]
    assert_page_is_clean(phone)  # the CSP nonce and the CSRF token filled into the stored page work

    enter_card(phone, "4242424242424242")
    phone.get_by_role("button", name=f"Pay {row['open_balance']}").click()
    phone.wait_for_url(f"{live_server.url}/pay/receipt/**")
    payment = Payment.objects.get(channel="guest_web", status="succeeded")
    wait_for_webhooks([payment.gateway_payment_id])

    phone.goto(live_server.url + reverse("billing:pay_account"))
    assert phone.locator(".nothing-due").is_visible()
    assert phone.get_by_role("button", name=f"Pay {row['open_balance']}").count() == 0
    assert Payment.objects.filter(channel="guest_web").count() == 1


def test_pay_link_with_3d_secure_card(live_server, phone, demo, stripe_live, our_requests, mailoutbox):
    biller, rows = demo
    row = rows[-1]
    bill = Bill.objects.get(biller=biller, number=row["open_bills"][0]["number"])
    phone.goto(paylinks.bill_pay_url(bill))
    phone.wait_for_url(live_server.url + reverse("billing:pay_account"))
    phone.get_by_label("E-mail for your receipt").fill("guest3ds@example.com")
    pay = phone.get_by_role("button", name=f"Pay {row['open_balance']}")
    assert_page_is_clean(phone)

    enter_card(phone, "4000002500003155")
    pay.click()
    complete = phone.get_by_role("button", name="Complete authentication")
    complete.wait_for(state="visible")
    assert pay.is_disabled()  # no second click while the bank checks
    complete.click()
    phone.wait_for_url(f"{live_server.url}/pay/receipt/**")
    payment = Payment.objects.get(channel="guest_web")  # exactly one online payment: the demo's are offline
    assert payment.status == "succeeded"
    assert phone.get_by_test_id("confirmation-number").inner_text() == payment.confirmation_number
    assert phone.get_by_label("Get your bills by e-mail (paperless)").is_visible()
    assert_page_is_clean(phone)
    assert_no_card_data_reached_us(our_requests)

    intents = stripe_support.payment_intents(stripe_live)
    assert [(i["id"], i["status"]) for i in intents] == [(payment.gateway_payment_id, "succeeded")]
    wait_for_webhooks([payment.gateway_payment_id])
    bill.refresh_from_db()
    assert bill.status == "paid"
    assert [m.to for m in receipt_emails(mailoutbox)] == [["guest3ds@example.com"]]


def test_one_screen_card_typed_once_total_follows_the_amount(live_server, phone, demo, stripe_live, our_requests):
    """Issue 10, item 1: a payer who fills the form from top to bottom types the card once. Changing the amount
    after the card updates the total and the Pay button in place, and the card is still there when Pay is pressed."""
    biller, rows = demo
    biller.convenience_fee_fixed = 100
    biller.save()
    row = rows[0]
    bill = Bill.objects.get(biller=biller, number=row["open_bills"][0]["number"])
    phone.goto(paylinks.bill_pay_url(bill))
    phone.wait_for_url(live_server.url + reverse("billing:pay_account"))
    assert not phone.get_by_role("button", name="Continue").count()

    enter_card(phone, "4242424242424242")
    phone.get_by_label("Another amount").check()
    phone.get_by_label("Amount to pay").fill("10.00")
    pay = phone.get_by_role("button", name="Pay $11.00")
    pay.wait_for(state="visible")
    assert phone.get_by_test_id("quote-total").inner_text() == "$11.00"
    assert phone.locator("#card-element").get_by_label("number").input_value() == "4242424242424242"
    assert_page_is_clean(phone)

    phone.get_by_label("E-mail for your receipt").fill("onescreen@example.com")
    pay.click()
    phone.wait_for_url(f"{live_server.url}/pay/receipt/**")
    payment = Payment.objects.get(channel="guest_web")
    assert (payment.status, payment.amount, payment.total_charged) == ("succeeded", 1000, 1100)
    assert phone.get_by_test_id("receipt-total").inner_text() == "$11.00"
    assert [i["amount"] for i in stripe_support.payment_intents(stripe_live)] == [1100]
    assert_no_card_data_reached_us(our_requests)
    wait_for_webhooks([payment.gateway_payment_id])


def test_without_javascript_the_screen_still_quotes(live_server, browser, demo):
    """With JavaScript off the same form posts to the server, which shows the new total; the card section says
    card payment needs JavaScript and lists the other ways to pay."""
    _biller, rows = demo
    row = next(r for r in rows if len(r["open_bills"]) >= 2)
    context = browser.new_context(viewport={"width": 360, "height": 740}, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(live_server.url + reverse("billing:pay"))
        page.get_by_label("Account number").fill(row["account_number"])
        page.get_by_label("Postal code of the service address").fill(row["postal_code"])
        page.get_by_role("button", name="Find my account").click()
        page.wait_for_url(live_server.url + reverse("billing:pay_account"))
        page.get_by_label("Another amount").check()
        page.get_by_label("Amount to pay").fill("5.00")
        page.get_by_label("E-mail for your receipt").fill("nojs@example.com")
        page.get_by_role("button", name=f"Pay {row['open_balance']}").click()
        page.get_by_role("button", name="Pay $5.00").wait_for(state="visible")
        assert page.get_by_test_id("quote-total").inner_text() == "$5.00"
        assert page.get_by_label("Amount to pay").input_value() == "5.00"
        notice = page.locator(".no-script")  # Playwright's text search skips <noscript>, so find it by class
        assert notice.is_visible() and "Paying by card on this page needs JavaScript" in notice.inner_text()
        assert not has_horizontal_overflow(page)
    finally:
        context.close()
    assert not Payment.objects.filter(channel="guest_web").exists()


def test_after_the_stand_in_forgets_the_intent_the_payer_still_pays(live_server, phone, demo, stripe_live):
    """Issue 10, items 2 and 3: a Stripe test decline card shows its own message; then the stand-in loses its
    state (as a restart of the run command used to do) and the next Pay still works, with the card number typed
    in groups as it is printed."""
    biller, rows = demo
    row = rows[0]
    bill = Bill.objects.get(biller=biller, number=row["open_bills"][0]["number"])
    phone.goto(paylinks.bill_pay_url(bill))
    phone.wait_for_url(live_server.url + reverse("billing:pay_account"))
    phone.get_by_label("E-mail for your receipt").fill("restart@example.com")
    pay = phone.get_by_role("button", name=f"Pay {row['open_balance']}")

    enter_card(phone, "4000000000009995")
    pay.click()
    alert = phone.locator("#pay-error")
    alert.wait_for(state="visible")
    assert alert.inner_text() == "Your card has insufficient funds. Please use a different card or try again later."
    assert_page_is_clean(phone)

    stripe_support.flush(stripe_live)  # the stand-in forgets every intent
    enter_card(phone, "4242 4242 4242 4242")
    pay.click()
    phone.wait_for_url(f"{live_server.url}/pay/receipt/**")
    assert phone.get_by_role("heading", name="Thank you, your payment is complete").is_visible()
    online = Payment.objects.filter(channel="guest_web")
    assert sorted(online.values_list("status", flat=True)) == ["failed", "succeeded"]
    paid = online.get(status="succeeded")
    assert [i["id"] for i in stripe_support.payment_intents(stripe_live)] == [paid.gateway_payment_id]
    wait_for_webhooks([paid.gateway_payment_id])
