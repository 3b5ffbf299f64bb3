"""The guest payment journey on the server, against a real localstripe: start (server quote), confirm with the payment
method id stripe.js makes, 3-D Secure, declines and retries, the return address, and who may see the receipt."""

import json
import urllib.parse
import urllib.request

import pytest
from django.test import Client
from django.urls import reverse

from billing.models import GuestEnrollmentRequest, Payment
from billing.payments import lookup
from billing.payments.receipts import receipt_token
from notifications.models import Notification
from tests import stripe_support
from tests.factories import CustomerAccountFactory, make_bill
from tests.notice_sending import celery_eager, receipt_emails  # noqa: F401

START = "/pay/account/start/"
CONFIRM = "/pay/account/confirm/"
FORM = {"amount_choice": "full", "receipt_email": "payer@example.com"}


def grant(client, account):
    session = client.session
    session[lookup.GRANT_SESSION_KEY] = {"account_id": account.pk, "expires_at": 2**40}
    session.save()
    return client


@pytest.fixture
def payer(client, account):
    return grant(client, account)


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """Run on_commit callbacks (the receipt notice) as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def card_token(localstripe, number: str) -> dict:
    """What localstripe's stripe.js does in the browser for createToken(card): only the publishable key, straight to
    the Stripe side. Our server only ever sees the resulting id."""
    body = urllib.parse.urlencode(
        {
            "card[number]": number,
            "card[exp_month]": "12",
            "card[exp_year]": "2034",
            "card[cvc]": "123",
            "key": stripe_support.PUBLISHABLE_KEY,
        }
    ).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{localstripe}/v1/tokens", data=body), timeout=5) as response:
        return json.loads(response.read())


def authenticate_3ds(localstripe, client_secret: str, *, success: bool = True) -> None:
    """The "Complete authentication" button of localstripe's 3-D Secure pop-up."""
    intent_id = client_secret.split("_secret_")[0]
    body = json.dumps({"key": stripe_support.PUBLISHABLE_KEY, "client_secret": client_secret}).encode()
    url = f"{localstripe}/v1/payment_intents/{intent_id}/_authenticate?success={'true' if success else 'false'}"
    with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=5) as response:
        assert response.status == 200


def start(client, **extra):
    response = client.post(START, {**FORM, **extra})
    return response.status_code, response.json()


def confirm(client, intent_id, payment_method=None):
    data = {"payment_intent": intent_id}
    if payment_method:
        data["payment_method"] = payment_method
    response = client.post(CONFIRM, data)
    return response.status_code, response.json()


@pytest.mark.usefixtures("celery_eager")
def test_quote_start_confirm_return_receipt(stripe_settings, localstripe, payer, account, mailoutbox, on_commit):
    account.biller.convenience_fee_fixed = 150
    account.biller.save()
    bill = make_bill(account, amounts=(5000,))
    status, started = start(payer)
    assert status == 200 and started["total"] == 5150 and started["totalDisplay"] == "$51.50"
    assert started["clientSecret"].startswith(started["paymentIntent"] + "_secret_")

    with on_commit():
        status, answer = confirm(payer, started["paymentIntent"], "pm_card_visa")
    assert status == 200 and answer["status"] == "succeeded"
    assert answer["next"] == f"/pay/return/?payment_intent={started['paymentIntent']}"

    with on_commit():
        response = payer.get(answer["next"])
    payment = Payment.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("billing:pay_receipt", args=[payment.confirmation_number])
    assert payment.status == "succeeded" and payment.total_charged == 5150
    bill.refresh_from_db()
    assert bill.status == "paid"

    html = payer.get(response.url).content.decode()
    assert payment.confirmation_number in html
    assert bill.number in html
    assert "$50.00" in html and "$1.50" in html and 'data-testid="receipt-total">$51.50<' in html
    assert payment.payment_method_summary and payment.payment_method_summary in html
    assert account.biller.support_email in html
    assert "Get your bills by e-mail (paperless)" in html

    receipts = receipt_emails(mailoutbox)  # the payment_received notice, sent through the outbox
    assert len(receipts) == 1 and receipts[0].to == ["payer@example.com"]
    assert payment.confirmation_number in receipts[0].body
    assert receipts[0].alternatives and receipts[0].alternatives[0][1] == "text/html"
    assert stripe_support.payment_intents(localstripe)[0]["status"] == "succeeded"


def test_a_tampered_amount_from_the_browser_is_ignored(stripe_settings, localstripe, payer, account):
    make_bill(account, amounts=(5000,))
    status, started = start(payer, amount="1", total="100", fee_amount="0", quote_total="1")
    assert status == 200 and started["total"] == 5000
    (intent,) = stripe_support.payment_intents(localstripe)
    assert intent["amount"] == 5000
    assert Payment.objects.get().total_charged == 5000


def test_a_second_post_of_the_same_form_gives_the_same_intent(stripe_settings, localstripe, payer, account):
    make_bill(account, amounts=(5000,))
    _, first = start(payer)
    _, second = start(payer)
    assert first["paymentIntent"] == second["paymentIntent"]
    assert first["clientSecret"] == second["clientSecret"]
    assert len(stripe_support.payment_intents(localstripe)) == 1 and Payment.objects.count() == 1


def test_a_double_click_on_pay_confirms_once(stripe_settings, localstripe, payer, account, on_commit):
    make_bill(account, amounts=(5000,))
    _, started = start(payer)
    with on_commit():
        _, first = confirm(payer, started["paymentIntent"], "pm_card_visa")
        _, second = confirm(payer, started["paymentIntent"], "pm_card_visa")
    assert first["status"] == second["status"] == "succeeded"
    payment = Payment.objects.get()
    assert payment.attempts.filter(kind="confirm").count() == 1
    assert [i["status"] for i in stripe_support.payment_intents(localstripe)] == ["succeeded"]


def test_a_decline_keeps_the_payment_and_the_retry_gets_a_fresh_intent(stripe_settings, localstripe, payer, account):
    make_bill(account, amounts=(5000,))
    _, started = start(payer)
    declined_token = card_token(localstripe, "4000000000000341")
    status, answer = confirm(payer, started["paymentIntent"], declined_token["card"]["id"])
    assert status == 200 and answer["status"] == "declined"
    assert answer["message"] == "Your card was declined. Please try again or use a different card."
    payment = Payment.objects.get()
    assert payment.status == "failed"

    _, retried = start(payer)
    assert retried["paymentIntent"] != started["paymentIntent"]
    good_token = card_token(localstripe, "4242424242424242")
    _, answer = confirm(payer, retried["paymentIntent"], good_token["card"]["id"])
    assert answer["status"] == "succeeded"
    payment.refresh_from_db()
    assert payment.status == "succeeded" and Payment.objects.count() == 1
    assert payment.payment_method_summary.endswith("4242")
    statuses = {i["id"]: i["status"] for i in stripe_support.payment_intents(localstripe)}
    assert statuses == {started["paymentIntent"]: "canceled", retried["paymentIntent"]: "succeeded"}
    # The first intent, now canceled, cannot be confirmed from a stale tab.
    status, _ = confirm(payer, started["paymentIntent"], "pm_card_visa")
    assert status == 409


def test_3d_secure_is_completed_in_the_page_then_recorded(stripe_settings, localstripe, payer, account):
    make_bill(account, amounts=(5000,))
    _, started = start(payer)
    token = card_token(localstripe, "4000002500003155")
    _, answer = confirm(payer, started["paymentIntent"], token["card"]["id"])
    assert answer["status"] == "requires_action" and answer["clientSecret"] == started["clientSecret"]
    assert Payment.objects.get().status == "requires_action"
    authenticate_3ds(localstripe, answer["clientSecret"])
    _, answer = confirm(payer, started["paymentIntent"])
    assert answer["status"] == "succeeded"
    assert Payment.objects.get().status == "succeeded"


def test_failed_3d_secure_is_a_plain_decline(stripe_settings, localstripe, payer, account):
    make_bill(account, amounts=(5000,))
    _, started = start(payer)
    token = card_token(localstripe, "4000002500003155")
    _, answer = confirm(payer, started["paymentIntent"], token["card"]["id"])
    authenticate_3ds(localstripe, answer["clientSecret"], success=False)
    _, answer = confirm(payer, started["paymentIntent"])
    assert answer["status"] == "declined"
    assert "could not verify this payment with your bank" in answer["message"]


@pytest.mark.usefixtures("celery_eager")
def test_receipt_email_sent_once_when_webhook_and_return_both_record(
    stripe_settings, localstripe, payer, account, client, mailoutbox, on_commit
):
    make_bill(account, amounts=(5000,))
    _, started = start(payer)
    intent_id = started["paymentIntent"]
    from billing.payments.gateway import get_gateway

    get_gateway().confirm_payment_intent(intent_id, idempotency_key="t-confirm", payment_method="pm_card_visa")
    payload = json.dumps(
        {
            "id": "evt_receipt_once",
            "object": "event",
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": intent_id, "object": "payment_intent"}},
        }
    )
    signature = stripe_support.sign_webhook_payload(payload, stripe_support.WEBHOOK_SECRET)
    with on_commit():
        response = Client().post(
            "/stripe/webhook/", payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
        )
    assert response.status_code == 200
    with on_commit():
        assert payer.get(f"/pay/return/?payment_intent={intent_id}").status_code == 302
    with on_commit():
        payer.get(f"/pay/return/?payment_intent={intent_id}")
    payment = Payment.objects.get()
    assert payment.status == "succeeded" and payment.receipt_sent_at is not None
    assert len(receipt_emails(mailoutbox)) == 1
    sent = Notification.objects.filter(payment=payment, kind="payment_received", channel="email", status="sent")
    assert sent.count() == 1


def test_receipt_is_not_reachable_from_another_session(stripe_settings, localstripe, payer, account, on_commit):
    make_bill(account, amounts=(5000,))
    _, started = start(payer)
    with on_commit():
        confirm(payer, started["paymentIntent"], "pm_card_visa")
    payment = Payment.objects.get()
    url = reverse("billing:pay_receipt", args=[payment.confirmation_number])
    assert payer.get(url).status_code == 200

    stranger = Client()
    assert stranger.get(url).status_code == 404
    assert stranger.get(url + "pdf/").status_code == 404
    assert stranger.get(f"/pay/return/?payment_intent={started['paymentIntent']}").status_code == 404
    assert stranger.get(url + "?key=forged").status_code == 404
    # Someone granted another account is no closer.
    neighbour = grant(Client(), CustomerAccountFactory(biller=account.biller))
    assert neighbour.get(url).status_code == 404
    assert confirm(neighbour, started["paymentIntent"], "pm_card_visa")[0] == 409
    # The signed link in the receipt e-mail opens it in any browser, then drops the key from the address.
    reader = Client()
    response = reader.get(url + f"?key={receipt_token(payment)}")
    assert response.status_code == 302 and response.url == url
    assert reader.get(url).status_code == 200


def test_receipt_pdf_is_a_pdf(stripe_settings, localstripe, payer, account, on_commit):
    make_bill(account, amounts=(5000,))
    _, started = start(payer)
    with on_commit():
        confirm(payer, started["paymentIntent"], "pm_card_visa")
    payment = Payment.objects.get()
    response = payer.get(reverse("billing:pay_receipt_pdf", args=[payment.confirmation_number]))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    assert payment.confirmation_number in response["Content-Disposition"]


def test_choices_ticked_before_paying_are_recorded_and_explained(
    stripe_settings, localstripe, payer, account, on_commit
):
    make_bill(account, amounts=(5000,))
    _, started = start(payer, paperless="on", autopay="on")
    with on_commit():
        confirm(payer, started["paymentIntent"], "pm_card_visa")
    payment = Payment.objects.get()
    assert payment.paperless_requested and payment.save_card_requested
    request = GuestEnrollmentRequest.objects.get(payment=payment)
    assert (request.email, request.paperless, request.autopay, request.consumed_at) == (
        "payer@example.com", True, True, None,
    )  # fmt: skip
    html = payer.get(reverse("billing:pay_receipt", args=[payment.confirmation_number])).content.decode()
    assert "We'll e-mail you a link at payer@example.com to confirm" in html
    assert "We have not saved your card" in html
    assert 'name="paperless"' not in html  # already asked for: no second offer


def test_the_enrolment_offer_on_the_receipt_records_paperless(stripe_settings, localstripe, payer, account, on_commit):
    make_bill(account, amounts=(5000,))
    _, started = start(payer)
    with on_commit():
        confirm(payer, started["paymentIntent"], "pm_card_visa")
    payment = Payment.objects.get()
    url = reverse("billing:pay_receipt_enrol", args=[payment.confirmation_number])
    response = payer.post(url, {"email": "bills@example.com"})  # no tick
    assert response.status_code == 400 and "Tick the box" in response.content.decode()
    assert not GuestEnrollmentRequest.objects.exists()
    response = payer.post(url, {"email": "bills@example.com", "paperless": "on"}, follow=True)
    assert "We&#x27;ll e-mail you a link to confirm paperless bills" in response.content.decode()
    request = GuestEnrollmentRequest.objects.get()
    assert (request.email, request.paperless, request.autopay) == ("bills@example.com", True, False)
    assert Client().post(url, {"email": "x@example.com", "paperless": "on"}).status_code == 404


def test_a_declined_return_goes_back_to_the_payment_screen(stripe_settings, localstripe, payer, account):
    make_bill(account, amounts=(5000,))
    _, started = start(payer)
    confirm(payer, started["paymentIntent"], "pm_card_chargeCustomerFail")
    response = payer.get(f"/pay/return/?payment_intent={started['paymentIntent']}", follow=True)
    assert response.redirect_chain[-1][0] == reverse("billing:pay_account")
    assert "Your card was declined" in response.content.decode()


def test_starting_needs_the_session_grant(stripe_settings, client, account):
    make_bill(account, amounts=(5000,))
    response = client.post(START, FORM)
    assert response.status_code == 403 and response.json()["redirect"] == "/pay/"
    assert client.post(CONFIRM, {"payment_intent": "pi_x", "payment_method": "pm_card_visa"}).status_code == 403
    assert not Payment.objects.exists()


def test_invalid_choices_start_nothing(stripe_settings, localstripe, payer, account):
    make_bill(account, amounts=(5000,))
    status, answer = start(payer, amount_choice="other", other_amount="600")
    assert status == 409 and "more than" in answer["error"]
    status, answer = start(payer, receipt_email="")
    assert status == 400 and "e-mail address" in answer["error"]
    status, answer = confirm(payer, "pi_nothing", "4242424242424242")
    assert status == 409
    assert not Payment.objects.exists() and stripe_support.payment_intents(localstripe) == []


def test_the_payment_screen_says_card_payment_needs_javascript(stripe_settings, payer, account):
    make_bill(account, amounts=(5000,))
    html = payer.post("/pay/account/", FORM).content.decode()
    assert "<noscript>" in html and "needs JavaScript" in html and "Other ways to pay" in html
    assert 'id="pay-config"' in html and stripe_support.PUBLISHABLE_KEY in html
    assert "_secret_" not in html  # the client secret is only handed out by the start POST
    assert f'src="{stripe_settings.STRIPE_JS_URL}"' in html and "/static/js/pay.js" in html


# --- An intent the gateway no longer knows (issue 10, item 2) --------------------------------------------------------


@pytest.mark.parametrize("declined_first", [False, True], ids=["in-flight", "after-a-decline"])
def test_an_intent_the_gateway_forgot_is_abandoned_and_a_new_payment_starts(
    stripe_settings, localstripe, payer, account, declined_first
):
    """localstripe restarted empty (the run command used to do that): the account's payment points at an intent
    that answers 404. Every start used to say the service was unavailable; now the old payment is released and the
    payer pays with a new one."""
    from billing.models import BillingEvent

    make_bill(account, amounts=(5000,))
    status, started = start(payer)
    assert status == 200
    old = Payment.objects.get()
    if declined_first:
        assert confirm(payer, started["paymentIntent"], card_token(localstripe, "4000000000000341")["card"]["id"])[0] == 200
        old.refresh_from_db()
        assert old.status == Payment.Status.FAILED
    stripe_support.flush(localstripe)  # what a restart of an in-memory stand-in does

    status, again = start(payer)
    assert status == 200, again
    assert again["paymentIntent"] != started["paymentIntent"]
    old.refresh_from_db()
    if declined_first:
        assert old.status == Payment.Status.FAILED  # stays as it was: it is history
    else:
        assert old.status == Payment.Status.CANCELED
        event = BillingEvent.objects.filter(payment=old, to_status="canceled").get()
        assert event.from_status == "pending" and "does not know intent" in event.message
    new = Payment.objects.get(gateway_payment_id=again["paymentIntent"])
    assert new.pk != old.pk and new.status == Payment.Status.PENDING

    status, answer = confirm(payer, again["paymentIntent"], card_token(localstripe, "4242 4242 4242 4242")["card"]["id"])
    assert (status, answer["status"]) == (200, "succeeded")
    new.refresh_from_db()
    assert new.status == Payment.Status.SUCCEEDED
    assert Payment.objects.filter(status=Payment.Status.SUCCEEDED).count() == 1


def test_another_gateway_error_still_says_unavailable(stripe_settings, payer, account, settings):
    make_bill(account, amounts=(5000,))
    assert start(payer)[0] == 200
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens: not a 404
    status, answer = start(payer)
    assert status == 409 and "unavailable" in answer["error"]
    assert Payment.objects.get().status == Payment.Status.PENDING
