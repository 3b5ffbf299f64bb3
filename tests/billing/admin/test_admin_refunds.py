import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import call_command
from django.urls import reverse

from billing.models import Bill, BillingEvent, Refund
from billing.payments.offline import payment_record_offline
from tests.billing.payments.test_refunds import paid  # noqa: F401 - a fixture
from tests.factories import make_bill
from tests.notice_sending import celery_eager, refund_emails  # noqa: F401
from tests.staff_support import staff_login


def _paid_cash(account):
    bill = make_bill(account, amounts=(5000,))
    payment = payment_record_offline(account=account, amount=5000, method="cash")
    return bill, payment


@pytest.mark.usefixtures("celery_eager")
def test_billing_admin_refunds_part_of_a_payment_and_the_bill_reopens(
    admin_client, admin_user, account, django_capture_on_commit_callbacks
):
    bill, payment = _paid_cash(account)
    url = reverse("admin:billing_payment_refund", args=[payment.pk])
    page = admin_client.get(reverse("admin:billing_payment_change", args=[payment.pk])).content.decode()
    assert url in page
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"amount": "12.50", "reason": "Billing error"})
    assert response.status_code == 302
    refund = Refund.objects.get()
    assert (refund.amount, refund.status, refund.reason, refund.created_by) == (1250, "succeeded", "Billing error", admin_user)
    payment.refresh_from_db()
    bill.refresh_from_db()
    assert payment.amount_refunded == 1250
    assert (bill.status, bill.balance_due) == (Bill.Status.OPEN, 1250)
    assert BillingEvent.objects.filter(kind=BillingEvent.Kind.REFUND, actor=admin_user).exists()
    assert any("Billing error" in m.body for m in refund_emails(mail.outbox))


def test_refund_over_what_is_left_is_refused_and_nothing_changes(admin_client, account):
    _, payment = _paid_cash(account)
    url = reverse("admin:billing_payment_refund", args=[payment.pk])
    admin_client.post(url, {"amount": "40.00", "reason": "First"})
    response = admin_client.post(url, {"amount": "10.01", "reason": "Second"})
    assert response.status_code == 200
    assert "At most" in response.content.decode()
    payment.refresh_from_db()
    assert payment.amount_refunded == 4000
    assert Refund.objects.count() == 1


def test_refund_needs_a_reason_and_a_plain_amount(admin_client, account):
    _, payment = _paid_cash(account)
    url = reverse("admin:billing_payment_refund", args=[payment.pk])
    for data in ({"amount": "12,50", "reason": "x"}, {"amount": "abc", "reason": "x"}, {"amount": "5.00", "reason": ""}):
        response = admin_client.post(url, data)
        assert response.status_code == 200
    assert Refund.objects.count() == 0


def test_clerk_cannot_refund(client, django_user_model, account):
    call_command("setup_roles", verbosity=0)
    clerk = django_user_model.objects.create_user(email="c@example.com", password="x", is_staff=True)
    clerk.groups.add(Group.objects.get(name="Clerk"))
    staff_login(client, clerk)
    _, payment = _paid_cash(account)
    assert client.post(reverse("admin:billing_payment_refund", args=[payment.pk]), {"amount": "1", "reason": "x"}).status_code == 403
    page = client.get(reverse("admin:billing_payment_change", args=[payment.pk])).content.decode()
    assert reverse("admin:billing_payment_refund", args=[payment.pk]) not in page
    assert Refund.objects.count() == 0


def test_webhook_events_are_visible_and_read_only(admin_client, db):
    from billing.models import WebhookEvent

    event = WebhookEvent.objects.create(event_id="evt_1", type="payment_intent.succeeded", payload={"id": "evt_1"})
    listing = admin_client.get(reverse("admin:billing_webhookevent_changelist")).content.decode()
    assert "evt_1" in listing
    assert admin_client.get(reverse("admin:billing_webhookevent_add")).status_code == 403
    admin_client.post(reverse("admin:billing_webhookevent_delete", args=[event.pk]), {"post": "yes"})
    assert WebhookEvent.objects.filter(pk=event.pk).exists()


def test_guest_enrolment_requests_are_listed_read_only(admin_client, account):
    from billing.models import GuestEnrollmentRequest

    _, payment = _paid_cash(account)
    GuestEnrollmentRequest.objects.create(payment=payment, account=account, email="g@example.com", paperless=True)
    listing = admin_client.get(reverse("admin:billing_guestenrollmentrequest_changelist")).content.decode()
    assert "g@example.com" in listing
    assert admin_client.get(reverse("admin:billing_guestenrollmentrequest_add")).status_code == 403


@pytest.mark.usefixtures("celery_eager")
def test_unknown_refund_is_pending_confirmation_for_staff_and_the_action_settles_it_once(
    admin_client, paid, localstripe, monkeypatch, django_capture_on_commit_callbacks
):
    """The gateway made the refund but its answer was lost: the form never says nothing was refunded, the list says
    "Pending confirmation", and "Check with the gateway / retry" finds it at the gateway instead of paying again."""
    from tests.billing.payments.test_refunds import LostAnswer, refunds_at_gateway

    payment, _older, _newer = paid
    LostAnswer(monkeypatch)
    response = admin_client.post(
        reverse("admin:billing_payment_refund", args=[payment.pk]), {"amount": "10.00", "reason": "Meter misread"}
    )
    page = response.content.decode()
    assert response.status_code == 200 and "pending confirmation" in page and "Nothing was refunded" not in page
    refund = Refund.objects.get()
    listing = admin_client.get(reverse("admin:billing_refund_changelist")).content.decode()
    assert "Pending confirmation" in listing and "Check with the gateway / retry" in listing

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            reverse("admin:billing_refund_changelist"),
            {"action": "settle_with_gateway", "_selected_action": [refund.pk]},
        )
    refund.refresh_from_db()
    payment.refresh_from_db()
    assert refund.status == "succeeded" and payment.amount_refunded == 1000
    assert [r["amount"] for r in refunds_at_gateway(localstripe)] == [1000]
