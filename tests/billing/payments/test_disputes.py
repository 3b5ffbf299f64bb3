"""Refunds and disputes made outside Billpay, told to us by signed webhook events.

localstripe never sends charge.refunded or charge.dispute.* events (and has no disputes at all), so these tests
deliver them themselves, in Stripe's event shape and signed with the endpoint's secret, like Stripe would. The
dashboard refund itself is made for real at localstripe, without our metadata, as the dashboard would."""

import pytest

from billing.models import Bill, Dispute, Refund
from billing.payments.gateway import get_gateway
from tests.billing.payments.test_refunds import paid, refunds_at_gateway  # noqa: F401 - a fixture
from tests.billing.payments.test_webhooks import post, stripe_event
from tests.notice_sending import celery_eager, refund_emails  # noqa: F401

T0 = 1_767_000_000


def charge_refunded(event_id, payment, *, created=T0):
    obj = {"id": "ch_from_event", "object": "charge", "payment_intent": payment.gateway_payment_id, "refunded": False}
    return stripe_event(event_id, "charge.refunded", obj, created=created)


@pytest.mark.usefixtures("celery_eager")
def test_dashboard_refund_is_recorded_against_its_payment_once(
    client, paid, localstripe, django_capture_on_commit_callbacks, mailoutbox
):
    payment, older, newer = paid
    made = get_gateway().create_refund(
        payment_intent=payment.gateway_payment_id, amount=700, idempotency_key="dashboard-1"
    )  # made in Stripe's dashboard: no metadata of ours
    for event_id in ("evt_r1", "evt_r1", "evt_r2"):  # a redelivery, then a second event about the same refund
        with django_capture_on_commit_callbacks(execute=True):
            assert post(client, *charge_refunded(event_id, payment)).status_code == 200
    refund = Refund.objects.get()
    assert (refund.kind, refund.status, refund.amount, refund.gateway_refund_id) == ("external", "succeeded", 700, made.id)
    payment.refresh_from_db()
    newer.refresh_from_db()
    assert payment.amount_refunded == 700 and payment.refundable == 4400
    assert (newer.status, newer.amount_paid) == ("open", 1300)  # newest bill first, as for our own refunds
    assert len(refund_emails(mailoutbox)) == 1
    assert [r["amount"] for r in refunds_at_gateway(localstripe)] == [700]


def dispute_obj(payment, *, status="needs_response", withdrawn=False, reinstated=False, amount=5100):
    transactions = []
    if withdrawn:
        transactions.append({"id": "txn_w", "object": "balance_transaction", "amount": -amount, "type": "adjustment"})
    if reinstated:
        transactions.append({"id": "txn_r", "object": "balance_transaction", "amount": amount, "type": "adjustment"})
    return {
        "id": "dp_1", "object": "dispute", "amount": amount, "currency": "usd", "charge": "ch_1",
        "payment_intent": payment.gateway_payment_id, "reason": "fraudulent", "status": status,
        "balance_transactions": transactions, "evidence_details": {"due_by": T0 + 7 * 86400}, "created": T0,
    }  # fmt: skip


def deliver(client, event_id, event_type, obj, created, capture):
    with capture(execute=True):
        assert post(client, *stripe_event(event_id, event_type, obj, created=created)).status_code == 200


def test_dispute_withdraws_reopens_tells_staff_and_a_win_restores(
    client, paid, django_capture_on_commit_callbacks, mailoutbox
):
    payment, older, newer = paid
    capture = django_capture_on_commit_callbacks
    deliver(client, "evt_d1", "charge.dispute.created", dispute_obj(payment), T0, capture)
    deliver(client, "evt_d2", "charge.dispute.funds_withdrawn", dispute_obj(payment, withdrawn=True), T0 + 1, capture)
    deliver(client, "evt_d2", "charge.dispute.funds_withdrawn", dispute_obj(payment, withdrawn=True), T0 + 1, capture)

    dispute = Dispute.objects.get()
    payment.refresh_from_db()
    older.refresh_from_db()
    newer.refresh_from_db()
    assert (dispute.status, dispute.funds, dispute.payment_id, dispute.amount) == ("needs_response", "withdrawn",
                                                                                   payment.pk, 5100)  # fmt: skip
    assert dispute.evidence_due_by is not None
    assert payment.disputed and payment.amount_disputed == 5100 and payment.refundable == 0
    assert (older.status, older.amount_paid, newer.status, newer.amount_paid) == ("open", 0, "open", 0)
    assert payment.events.filter(kind="dispute").exists()
    staff_mail = [m for m in mailoutbox if "dispute" in m.subject.lower()]
    assert len(staff_mail) == 1 and staff_mail[0].to == [payment.account.biller.support_email]

    # An older event arriving late never moves the status back.
    deliver(client, "evt_d0", "charge.dispute.updated", dispute_obj(payment, status="warning_needs_response"),
            T0 - 5, capture)  # fmt: skip
    deliver(client, "evt_d3", "charge.dispute.closed", dispute_obj(payment, status="won", withdrawn=True), T0 + 3,
            capture)  # fmt: skip
    deliver(client, "evt_d4", "charge.dispute.funds_reinstated",
            dispute_obj(payment, status="won", withdrawn=True, reinstated=True), T0 + 4, capture)  # fmt: skip
    deliver(client, "evt_d2b", "charge.dispute.funds_withdrawn", dispute_obj(payment, withdrawn=True), T0 + 1,
            capture)  # fmt: skip

    dispute.refresh_from_db()
    payment.refresh_from_db()
    older.refresh_from_db()
    newer.refresh_from_db()
    assert (dispute.status, dispute.funds) == ("won", "reinstated")
    assert payment.amount_disputed == 0 and payment.refundable == 5100
    assert (older.status, older.amount_paid, newer.status, newer.amount_paid) == ("paid", 3000, "paid", 2000)
    assert Dispute.objects.count() == 1


def test_reinstated_money_never_overpays_a_bill_paid_meanwhile(client, paid, django_capture_on_commit_callbacks):
    """A bill paid another way while the money was withdrawn is not overpaid when the money comes back."""
    from billing.payments.offline import payment_record_offline

    payment, older, newer = paid
    capture = django_capture_on_commit_callbacks
    deliver(client, "evt_w", "charge.dispute.funds_withdrawn", dispute_obj(payment, withdrawn=True), T0 + 1, capture)
    payment_record_offline(account=payment.account, amount=2000, method="cash")  # pays the newer bill
    deliver(client, "evt_r", "charge.dispute.funds_reinstated",
            dispute_obj(payment, status="won", withdrawn=True, reinstated=True), T0 + 4, capture)  # fmt: skip
    older.refresh_from_db()
    newer.refresh_from_db()
    payment.refresh_from_db()
    assert (older.status, older.amount_paid, newer.status, newer.amount_paid) == ("paid", 3000, "paid", 2000)
    assert payment.amount_disputed == 0
    # The 20.00 that could not go back on a bill is left for staff.
    assert payment.events.filter(kind="dispute", message__contains="could not be re-applied").exists()


def test_lost_dispute_keeps_the_bills_open(client, paid, django_capture_on_commit_callbacks):
    payment, older, newer = paid
    capture = django_capture_on_commit_callbacks
    deliver(client, "evt_l0", "charge.dispute.closed", dispute_obj(payment, status="lost", withdrawn=True), T0 + 9,
            capture)  # fmt: skip
    deliver(client, "evt_l1", "charge.dispute.created", dispute_obj(payment, withdrawn=True), T0, capture)
    dispute = Dispute.objects.get()
    payment.refresh_from_db()
    older.refresh_from_db()
    assert (dispute.status, dispute.funds) == ("lost", "withdrawn")
    assert payment.amount_disputed == 5100 and older.status == Bill.Status.OPEN


def test_staff_see_disputed_payments_and_disputes_read_only(admin_client, client, paid, django_capture_on_commit_callbacks):
    from django.urls import reverse

    payment, *_ = paid
    deliver(client, "evt_a1", "charge.dispute.created", dispute_obj(payment, withdrawn=True), T0,
            django_capture_on_commit_callbacks)  # fmt: skip
    flagged = admin_client.get(reverse("admin:billing_payment_changelist") + "?disputed__exact=1").content.decode()
    assert payment.confirmation_number in flagged
    page = admin_client.get(reverse("admin:billing_payment_change", args=[payment.pk])).content.decode()
    assert "dp_1" in page
    assert "dp_1" in admin_client.get(reverse("admin:billing_dispute_changelist")).content.decode()
    assert admin_client.get(reverse("admin:billing_dispute_add")).status_code == 403
