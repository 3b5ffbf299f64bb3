"""One-time SEPA debits through the payment core, against a real localstripe: the IBAN checked before anything
reaches the gateway, the mandate recorded as accepted, a processing debit counted on the bills, and a debit the bank
returns days later taken off them exactly once, whatever the order or number of webhook deliveries."""

import io

import pytest
from pypdf import PdfReader

from billing.errors import ApplicationError
from billing.models import BankMandate, BillingEvent, Payment, PaymentAllocation, WebhookEvent
from billing.payments.gateway import bank_decline_classify
from billing.payments.mandates import bank_account_check, mandate_sync
from notifications.models import Notification
from notifications.planner import reminders_plan
from tests import stripe_support
from tests.billing.bank_support import (
    BAD_CHECKSUM_IBAN,
    CREDITOR_ID,
    RETURNED_IBAN,
    USER_AGENT,
    intent_event,
    pay_by_bank,
    post_event,
    sepa_biller,
    wait_for_intent,
)
from tests.factories import make_bill
from tests.notice_sending import celery_eager  # noqa: F401


@pytest.fixture
def sepa_account(account):
    sepa_biller(account.biller)
    return account


def gateway_object(localstripe, path):
    import base64
    import json
    import urllib.request

    auth = base64.b64encode(f"{stripe_support.SECRET_KEY}:".encode()).decode()
    request = urllib.request.Request(f"{localstripe}{path}", headers={"Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


class RecordingGateway:
    """The real (localstripe) gateway, recording the name of every call made through it."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(self.real, name)


@pytest.fixture
def recorded_calls(monkeypatch):
    from billing.payments import gateway

    real = gateway.get_gateway
    calls = []

    def recording():
        wrapper = RecordingGateway(real())
        wrapper.calls = calls
        return wrapper

    monkeypatch.setattr(gateway, "get_gateway", recording)
    return calls


@pytest.mark.parametrize(
    ("iban", "message"),
    [
        (BAD_CHECKSUM_IBAN, "a character may be mistyped"),
        ("DE8937040044053201300", "wrong number of characters"),
        ("XX89370400440532013000", "must start with a country code"),
        ("", "Enter your IBAN"),
    ],
)
def test_a_bad_iban_gets_a_clear_message_and_creates_nothing_at_stripe(
    stripe_settings, localstripe, sepa_account, recorded_calls, iban, message
):
    make_bill(sepa_account, amounts=(5000,))
    with pytest.raises(ApplicationError) as error:
        pay_by_bank(sepa_account, iban=iban)
    assert message in error.value.message
    assert recorded_calls == []  # not one call reached the gateway
    assert stripe_support.payment_intents(localstripe) == []
    assert not Payment.objects.exists() and not BankMandate.objects.exists()


def test_the_iban_is_checked_for_country_length_and_checksum():
    checked = bank_account_check(
        kind="sepa_debit", account_number="de89 3704 0044 0532 0130 00", holder_name=" Jana  Novak ",
        holder_email="jana@example.com",
    )  # fmt: skip
    assert (checked.country, checked.last4, checked.bank_name) == ("DE", "3000", "Commerzbank")
    assert checked.details.account_number == "DE89370400440532013000"
    assert checked.details.holder_name == "Jana Novak"
    assert "DE89370400440532013000" not in repr(checked.details)  # never the whole IBAN in a log or a traceback


@pytest.mark.usefixtures("celery_eager")
def test_a_one_time_debit_records_the_mandate_and_pays_the_bill(
    stripe_settings, localstripe, sepa_account, mailoutbox, django_capture_on_commit_callbacks
):
    bill = make_bill(sepa_account, amounts=(5000,))
    with django_capture_on_commit_callbacks(execute=True):
        outcome = pay_by_bank(sepa_account)
    assert outcome.status == "succeeded"
    payment = Payment.objects.get()
    bill.refresh_from_db()
    assert (payment.method, payment.status, bill.status) == ("sepa_debit", "succeeded", "paid")
    assert payment.payment_method_summary == "Commerzbank •••• 3000"
    mandate = payment.mandate
    assert (mandate.usage, mandate.status, mandate.scheme) == ("single_use", "active", "sepa_debit")
    assert (mandate.holder_name, mandate.holder_email, mandate.last4) == ("Jana Novak", "jana@example.com", "3000")
    assert (mandate.ip, mandate.user_agent, mandate.creditor_identifier) == ("203.0.113.9", USER_AGENT, CREDITOR_ID)
    assert sepa_account.biller.name in mandate.mandate_text and CREDITOR_ID in mandate.mandate_text
    assert "8 weeks" in mandate.mandate_text and "refund" in mandate.mandate_text
    (intent,) = stripe_support.payment_intents(localstripe)
    assert intent["amount"] == 5000 and intent["status"] == "succeeded"
    method = gateway_object(localstripe, f"/v1/payment_methods/{mandate.gateway_payment_method_id}")
    assert method["type"] == "sepa_debit" and method["sepa_debit"]["last4"] == "3000"

    confirmation = [m for m in mailoutbox if "mandate" in m.subject.lower()]
    assert len(confirmation) == 1 and confirmation[0].to == ["jana@example.com"]
    assert mandate.reference in confirmation[0].body and CREDITOR_ID in confirmation[0].body
    assert "€50.00" in confirmation[0].body
    ((name, pdf, kind),) = confirmation[0].attachments  # the payer's copy of the mandate
    assert kind == "application/pdf" and name == f"mandate-{mandate.reference}.pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert mandate.reference in text and CREDITOR_ID in text and "8 weeks" in text


def test_a_debit_that_is_processing_counts_on_the_bills_and_cannot_be_paid_twice(
    stripe_settings, localstripe, sepa_account
):
    bill = make_bill(sepa_account, amounts=(5000,))
    outcome = pay_by_bank(sepa_account, iban=RETURNED_IBAN)
    assert outcome.status == "processing"
    payment = Payment.objects.get()
    bill.refresh_from_db()
    assert payment.status == "processing" and payment.applied_at is not None
    assert (bill.status, bill.balance_due) == ("paid", 0)
    with pytest.raises(ApplicationError, match="nothing to pay"):
        pay_by_bank(sepa_account)
    assert len(stripe_support.payment_intents(localstripe)) == 1
    # No reminder nags about a bill that is being debited: on its due date the planner writes none for it.
    reminders_plan(today=bill.due_date)
    assert not Notification.objects.filter(bill=bill, kind__in=["due_today", "due_upcoming", "past_due"]).exists()


@pytest.mark.usefixtures("celery_eager")
def test_a_debit_returned_days_later_reopens_the_bill_exactly_once_whatever_the_webhook_order(
    client, stripe_settings, localstripe, sepa_account, mailoutbox, django_capture_on_commit_callbacks
):
    """localstripe plays the bank: its failing IBAN's debit is `processing` at confirm and fails about 0.5 s later
    (standing in for the three days a real return takes). localstripe never sends `payment_intent.processing`, so
    that event is delivered here, signed, in Stripe's shape; the failure event too, twice, and before the processing
    one, as Stripe may. Each delivery makes the core re-read the intent from localstripe."""
    bill = make_bill(sepa_account, amounts=(5000,))
    pay_by_bank(sepa_account, iban=RETURNED_IBAN)
    payment = Payment.objects.get()
    intent = wait_for_intent(localstripe, payment.gateway_payment_id, "requires_payment_method")
    assert intent["last_payment_error"]["code"]  # the bank said no

    failed = intent_event("evt_failed_1", "payment_intent.payment_failed", intent)
    processing = intent_event("evt_processing_1", "payment_intent.processing", {**intent, "status": "processing"})
    for body, signature in (failed, failed, processing, failed):
        with django_capture_on_commit_callbacks(execute=True):
            assert post_event(client, body, signature).status_code == 200

    payment.refresh_from_db()
    bill.refresh_from_db()
    assert payment.status == "failed"
    assert (bill.status, bill.balance_due) == ("open", 5000)
    (allocation,) = PaymentAllocation.objects.filter(payment=payment)
    assert (allocation.amount, allocation.amount_reversed) == (5000, 5000)
    reversals = BillingEvent.objects.filter(payment=payment, kind=BillingEvent.Kind.REFUND)
    assert [(e.amount, e.bill_id) for e in reversals] == [(5000, bill.pk)]
    assert "bank debit returned" in reversals.get().message
    assert set(WebhookEvent.objects.values_list("event_id", flat=True)) == {"evt_failed_1", "evt_processing_1"}

    told = Notification.objects.filter(payment=payment, kind="payment_failed", channel="email")
    assert told.count() == 1 and told.get().status == "sent"
    (mail,) = [m for m in mailoutbox if m.subject.startswith("Your payment of")]
    assert "Your bank returned the direct debit of €50.00" in mail.body and "open again" in mail.body


def test_a_returned_debit_follows_its_decline_class():
    assert bank_decline_classify("account_closed").is_hard
    assert bank_decline_classify("insufficient_funds").retryable
    assert "not enough money in the bank account" in str(bank_decline_classify("insufficient_funds").payer_message)


def test_mandate_updated_sets_the_gateway_reference_and_inactive_stops_it(
    client, stripe_settings, localstripe, sepa_account
):
    """localstripe has no Mandate objects: the `mandate.updated` events are delivered here, signed, in Stripe's
    shape, newer first then an older one that must change nothing."""
    make_bill(sepa_account, amounts=(5000,))
    pay_by_bank(sepa_account)
    mandate = BankMandate.objects.get()
    obj = {
        "id": "mandate_1", "object": "mandate", "payment_method": mandate.gateway_payment_method_id,
        "status": "inactive", "type": "multi_use",
        "payment_method_details": {"type": "sepa_debit", "sepa_debit": {"reference": "STRIPEREF123"}},
    }  # fmt: skip
    assert post_event(client, *intent_event("evt_m2", "mandate.updated", obj, created=2000)).status_code == 200
    assert post_event(
        client, *intent_event("evt_m1", "mandate.updated", {**obj, "status": "active"}, created=1000)
    ).status_code == 200
    mandate.refresh_from_db()
    assert (mandate.gateway_mandate_id, mandate.gateway_reference, mandate.status) == (
        "mandate_1", "STRIPEREF123", "inactive"
    )  # fmt: skip
    assert mandate.display_reference == "STRIPEREF123" and not mandate.may_debit
    assert mandate_sync(data={"id": "mandate_unknown"}, event_created=1, source="test") is None


class FakeSlowBankGateway:
    """The real (localstripe) gateway, except that the first reads of the debit's intent say `processing`, as a real
    SEPA debit does for days (localstripe settles a good IBAN at once); after `settle()` it reads the truth."""

    def __init__(self, real):
        self.real, self.settled = real, False

    def __getattr__(self, name):
        return getattr(self.real, name)

    def _slow(self, intent):
        import dataclasses

        if not self.settled and intent.status == "succeeded":
            return dataclasses.replace(intent, status="processing")
        return intent

    def confirm_payment_intent(self, *args, **kwargs):
        return self._slow(self.real.confirm_payment_intent(*args, **kwargs))

    def retrieve_payment_intent(self, intent_id):
        return self._slow(self.real.retrieve_payment_intent(intent_id))


@pytest.mark.usefixtures("celery_eager")
def test_a_debit_that_settles_days_later_is_applied_once_and_the_receipt_goes_once(
    client, stripe_settings, localstripe, sepa_account, monkeypatch, mailoutbox, django_capture_on_commit_callbacks
):
    """`payment_intent.processing` and then `.succeeded` (twice), signed in Stripe's shape; the intent is read
    through FakeSlowBankGateway (see its docstring)."""
    from billing.payments import gateway

    bill = make_bill(sepa_account, amounts=(5000,))
    slow = FakeSlowBankGateway(gateway.get_gateway())
    monkeypatch.setattr(gateway, "get_gateway", lambda: slow)
    with django_capture_on_commit_callbacks(execute=True):
        assert pay_by_bank(sepa_account).status == "processing"
    payment = Payment.objects.get()
    intent = {"id": payment.gateway_payment_id, "object": "payment_intent", "status": "processing"}
    assert post_event(client, *intent_event("evt_p", "payment_intent.processing", intent)).status_code == 200
    slow.settled = True
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            body, signature = intent_event("evt_s", "payment_intent.succeeded", {**intent, "status": "succeeded"})
            assert post_event(client, body, signature).status_code == 200
    payment.refresh_from_db()
    bill.refresh_from_db()
    assert payment.status == "succeeded" and payment.mandate.status == "active"
    assert (bill.status, bill.amount_paid) == ("paid", 5000)
    assert [(a.amount, a.amount_reversed) for a in PaymentAllocation.objects.filter(payment=payment)] == [(5000, 0)]
    assert len([m for m in mailoutbox if m.subject.startswith("Payment received")]) == 1


def test_a_sepa_refund_claim_arrives_as_a_dispute_and_reopens_the_bill(
    client, stripe_settings, localstripe, sepa_account, django_capture_on_commit_callbacks
):
    """The payer claims the debit back from their bank within 8 weeks: Stripe reports `charge.dispute.created` (with
    the funds withdrawn). localstripe has no disputes, so the signed event is delivered here in Stripe's shape."""
    bill = make_bill(sepa_account, amounts=(5000,))
    pay_by_bank(sepa_account)
    payment = Payment.objects.get()
    dispute = {
        "id": "dp_sepa_1", "object": "dispute", "amount": 5000, "currency": "eur", "charge": "ch_1",
        "payment_intent": payment.gateway_payment_id, "reason": "debit_not_authorized", "status": "lost",
        "balance_transactions": [{"id": "txn_1", "amount": -5000, "type": "adjustment"}],
    }  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        assert post_event(client, *intent_event("evt_d", "charge.dispute.created", dispute)).status_code == 200
    payment.refresh_from_db()
    bill.refresh_from_db()
    assert payment.disputed and payment.amount_disputed == 5000
    assert (bill.status, bill.balance_due) == ("open", 5000)
