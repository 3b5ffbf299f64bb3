"""Refunds: capped by our own records (localstripe has no cap), bills reopened newest first, the payer told."""

import pytest

from billing.errors import ApplicationError
from billing.models import Payment, PaymentAttempt, Refund
from billing.payments import payment_record_result, payment_start, refund_create
from tests import stripe_support
from tests.billing.test_payments import confirm
from tests.factories import make_bill
from tests.notice_sending import celery_eager, refund_emails  # noqa: F401


@pytest.fixture
def paid(stripe_settings, account):
    """Two bills, 30.00 (older) and 20.00, paid by one 50.00 card payment with a 1.00 fee."""
    account.biller.convenience_fee_fixed = 100
    account.biller.save()
    older = make_bill(account, amounts=(3000,), due_in_days=3)
    newer = make_bill(account, amounts=(2000,), due_in_days=30)
    payment, _secret = payment_start(account=account, payer_email="payer@example.com", channel=Payment.Channel.PORTAL)
    confirm(payment.gateway_payment_id)
    payment = payment_record_result(payment_intent_id=payment.gateway_payment_id, source="test")
    assert payment.status == "succeeded" and payment.total_charged == 5100
    return payment, older, newer


def refunds_at_gateway(localstripe):
    return stripe_support.list_objects(localstripe, "/v1/refunds", api_key=stripe_support.SECRET_KEY)


@pytest.mark.usefixtures("celery_eager")
def test_cap_partial_then_rest_then_refused(
    paid, localstripe, staff_user, django_capture_on_commit_callbacks, mailoutbox
):
    payment, older, newer = paid
    with pytest.raises(ApplicationError, match="At most"):
        refund_create(payment=payment, amount=5101, reason="too much", actor=staff_user)
    assert refunds_at_gateway(localstripe) == []

    with django_capture_on_commit_callbacks(execute=True):
        first = refund_create(payment=payment, amount=2500, reason="Meter misread", actor=staff_user)
    assert (first.status, first.idempotency_key, first.created_by) == ("succeeded", f"refund-{first.pk}", staff_user)
    payment.refresh_from_db()
    older.refresh_from_db()
    newer.refresh_from_db()
    assert payment.amount_refunded == 2500 and payment.refundable == 2600
    # Newest bill first: all 20.00 of the newer bill, then 5.00 of the older one.
    assert (newer.status, newer.amount_paid) == ("open", 0)
    assert (older.status, older.amount_paid) == ("open", 2500)
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["payer@example.com"] and "$25.00" in mailoutbox[0].body
    assert "Meter misread" in mailoutbox[0].body and refund_emails(mailoutbox) == mailoutbox
    assert payment.events.filter(kind="refund", actor=staff_user, bill__isnull=True).count() == 1
    assert sorted(payment.events.filter(kind="refund", bill__isnull=False).values_list("amount", flat=True)) == [500, 2000]

    with django_capture_on_commit_callbacks(execute=True):
        refund_create(payment=payment, amount=2600, reason="Account closed", actor=staff_user)
    payment.refresh_from_db()
    older.refresh_from_db()
    assert payment.amount_refunded == 5100 and older.amount_paid == 0  # the last 1.00 was the fee
    with pytest.raises(ApplicationError, match="refunded in full"):
        refund_create(payment=payment, amount=1, reason="again", actor=staff_user)
    assert sorted(r["amount"] for r in refunds_at_gateway(localstripe)) == [2500, 2600]
    assert Refund.objects.filter(status="succeeded").count() == 2


def test_only_succeeded_payments(stripe_settings, account, staff_user):
    make_bill(account, amounts=(5000,))
    payment, _secret = payment_start(account=account, payer_email="", channel=Payment.Channel.GUEST_WEB)
    with pytest.raises(ApplicationError, match="went through"):
        refund_create(payment=payment, amount=100, reason="x", actor=staff_user)
    assert not Refund.objects.exists()


def test_amount_and_reason_required(paid, staff_user):
    payment, *_ = paid
    for amount, reason in ((0, "x"), (-5, "x"), (100, "  ")):
        with pytest.raises(ApplicationError):
            refund_create(payment=payment, amount=amount, reason=reason, actor=staff_user)


@pytest.mark.usefixtures("celery_eager")
def test_gateway_failure_leaves_refund_failed_and_nothing_changed(paid, stripe_settings, staff_user, mailoutbox):
    payment, older, newer = paid
    stripe_settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    with pytest.raises(ApplicationError, match="could not be made"):
        refund_create(payment=payment, amount=1000, reason="Meter misread", actor=staff_user)
    refund = Refund.objects.get()
    payment.refresh_from_db()
    newer.refresh_from_db()
    assert refund.status == "failed" and payment.amount_refunded == 0
    assert (newer.status, newer.amount_paid) == ("paid", 2000)
    assert payment.attempts.filter(kind="refund", outcome=PaymentAttempt.Outcome.ERROR).count() == 1
    assert mailoutbox == []
    # A failed refund does not count against the cap.
    assert payment.refundable == 5100
