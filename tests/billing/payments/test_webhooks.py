"""The Stripe webhook endpoint: signature first, the raw event stored once, then one service does the work."""

import json

import pytest
from django.urls import reverse

from billing.models import Payment, WebhookEvent
from billing.payments.online import payment_start
from tests import stripe_support
from tests.billing.payments.test_payments import confirm
from tests.factories import make_bill

URL = "/stripe/webhook/"


def post(client, body: bytes, signature: str | None):
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return client.post(URL, data=body, content_type="application/json", **headers)


def signed_event(event_id="evt_test_1", event_type="customer.created", obj=None):
    body = json.dumps(
        {"id": event_id, "object": "event", "type": event_type, "data": {"object": obj or {"id": "cus_1"}}}
    ).encode()
    return body, stripe_support.sign_webhook_payload(body, stripe_support.WEBHOOK_SECRET)


def test_url_name():
    assert reverse("billing:stripe_webhook") == URL


def test_bad_signature_is_400_and_nothing_is_stored(client, stripe_settings, db):
    body, _sig = signed_event()
    forged = stripe_support.sign_webhook_payload(body, "whsec_someone_else")
    for signature in (forged, None, "garbage"):
        response = post(client, body, signature)
        assert response.status_code == 400
        assert response.content == b"invalid webhook"
    assert not WebhookEvent.objects.exists()


def test_post_only(client, stripe_settings):
    assert client.get(URL).status_code == 405


def test_unknown_type_is_stored_and_answered_200_once(client, stripe_settings, db):
    body, signature = signed_event()
    first = post(client, body, signature)
    again = post(client, body, signature)
    assert (first.status_code, first.content) == (200, b"ok")
    assert (again.status_code, again.content) == (200, b"already received")
    stored = WebhookEvent.objects.get()
    assert (stored.event_id, stored.type, stored.payload) == ("evt_test_1", "customer.created", {"id": "cus_1"})
    assert stored.processed_at is not None


def test_real_delivery_records_the_payment(client, stripe_settings, webhook_receiver, account):
    bill = make_bill(account, amounts=(5000,))
    payment, _secret = payment_start(account=account, payer_email="p@example.com", channel=Payment.Channel.GUEST_WEB)
    confirm(payment.gateway_payment_id)
    delivery = webhook_receiver.wait_for("payment_intent.succeeded", object_id=payment.gateway_payment_id)
    for _ in range(3):
        assert post(client, delivery.body, delivery.signature).status_code == 200
    payment.refresh_from_db()
    bill.refresh_from_db()
    assert payment.status == "succeeded" and bill.status == "paid" and bill.amount_paid == 5000
    assert payment.allocations.count() == 1
    assert WebhookEvent.objects.filter(event_id=delivery.event["id"]).count() == 1


def test_payload_amounts_are_not_trusted(client, stripe_settings, account):
    """A correctly signed event claiming success does nothing the gateway does not confirm."""
    bill = make_bill(account, amounts=(5000,))
    payment, _secret = payment_start(account=account, payer_email="p@example.com", channel=Payment.Channel.GUEST_WEB)
    body, signature = signed_event(
        "evt_fake_success", "payment_intent.succeeded",
        {"id": payment.gateway_payment_id, "object": "payment_intent", "status": "succeeded", "amount": 5000},
    )  # fmt: skip
    assert post(client, body, signature).status_code == 200
    payment.refresh_from_db()
    bill.refresh_from_db()
    assert payment.status == "pending" and bill.amount_paid == 0


def test_gateway_down_answers_500_and_a_redelivery_processes_it(client, stripe_settings, account):
    make_bill(account, amounts=(5000,))
    payment, _secret = payment_start(account=account, payer_email="p@example.com", channel=Payment.Channel.GUEST_WEB)
    confirm(payment.gateway_payment_id)
    body, signature = signed_event("evt_retry", "payment_intent.succeeded", {"id": payment.gateway_payment_id})
    good_base = stripe_settings.STRIPE_API_BASE
    stripe_settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    assert post(client, body, signature).status_code == 500
    stored = WebhookEvent.objects.get()
    assert stored.processed_at is None and "gateway unavailable" in stored.error
    stripe_settings.STRIPE_API_BASE = good_base
    assert post(client, body, signature).status_code == 200
    payment.refresh_from_db()
    stored.refresh_from_db()
    assert payment.status == "succeeded" and stored.processed_at is not None and stored.error == ""


@pytest.mark.parametrize("event_type", ["payment_intent.payment_failed"])
def test_failure_delivery_marks_failed(client, stripe_settings, webhook_receiver, account, event_type):
    make_bill(account, amounts=(5000,))
    payment, _secret = payment_start(account=account, payer_email="p@example.com", channel=Payment.Channel.GUEST_WEB)
    from billing.payments.gateway import PaymentDeclined

    with pytest.raises(PaymentDeclined):
        confirm(payment.gateway_payment_id, "pm_card_chargeCustomerFail")
    delivery = webhook_receiver.wait_for(event_type, object_id=payment.gateway_payment_id)
    assert post(client, delivery.body, delivery.signature).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert payment.attempts.filter(outcome="declined").exists()


def stripe_event(event_id, event_type, obj, *, created=1_767_000_000, api_version="2024-06-20"):
    """A delivery in Stripe's event shape, signed with the endpoint's secret. localstripe never sends charge.refunded
    or dispute events, so the tests deliver them themselves."""
    body = json.dumps(
        {
            "id": event_id, "object": "event", "api_version": api_version, "created": created, "livemode": False,
            "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None}, "type": event_type,
            "data": {"object": obj},
        }
    ).encode()  # fmt: skip
    return body, stripe_support.sign_webhook_payload(body, stripe_support.WEBHOOK_SECRET)


def test_the_whole_raw_event_is_stored(client, stripe_settings, db):
    body, signature = stripe_event("evt_raw", "customer.created", {"id": "cus_9", "object": "customer"})
    assert post(client, body, signature).status_code == 200
    stored = WebhookEvent.objects.get()
    assert stored.body == body.decode() and stored.signature == signature
    assert (stored.livemode, stored.created, stored.api_version) == (False, 1_767_000_000, "2024-06-20")
    assert json.loads(stored.body)["data"]["object"] == {"id": "cus_9", "object": "customer"}
