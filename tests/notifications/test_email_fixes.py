"""E-mail fixes (issue 10, item 16): a refund e-mail does not ask for payment, a full payment's receipt e-mail shows no
"Amount due $0.00" with a Pay button, subjects carry no HTML entities, the guest-enrolment e-mails come from the biller,
and allauth's e-mails are the biller's with the site's public address, never the address the request came in on."""

import re
from email.utils import parseaddr

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from billing.models import Payment, Refund
from billing.payments.offline import payment_record_offline
from notifications.models import ChannelName, NoticeKind, Notification
from notifications.render import notification_render
from tests.factories import BillerFactory, CustomerAccountFactory, make_bill

pytestmark = pytest.mark.django_db

PUBLIC = "https://pay.riverside.example"


@pytest.fixture
def tom_and_jerry(db):
    return BillerFactory(name="Tom & Jerry Water", slug="tom-and-jerry")


def email_for(kind, *, account, payment=None, refund=None, bill=None):
    row = Notification(
        dedupe_key=f"test:{kind}", biller=account.biller, account=account, bill=bill, payment=payment, refund=refund,
        kind=kind, channel=ChannelName.EMAIL, send_at=timezone.now(),
    )  # fmt: skip
    return notification_render(row, to=account.email)


def test_a_refund_email_does_not_ask_for_payment(account):
    bill = make_bill(account, amounts=(5000,))
    payment = payment_record_offline(account=account, amount=5000, method=Payment.Method.CHEQUE, reference="1001")
    refund = Refund.objects.create(
        payment=payment, amount=1000, currency="USD", reason="Meter misread", idempotency_key="r-1",
        status=Refund.Status.SUCCEEDED,
    )  # fmt: skip
    Payment.objects.filter(pk=payment.pk).update(amount_refunded=1000)
    bill.refresh_from_db()

    message = email_for(NoticeKind.REFUND_ISSUED, account=account, payment=payment, refund=refund)

    for body in (message.text, message.html):
        assert "$10.00" in body
        assert "Amount due" not in body
        assert "Pay now" not in body


def test_a_full_payment_email_shows_no_amount_due_and_no_pay_button(account):
    make_bill(account, amounts=(5000,))
    payment = payment_record_offline(account=account, amount=5000, method=Payment.Method.CHEQUE, reference="1001")

    message = email_for(NoticeKind.PAYMENT_RECEIVED, account=account, payment=payment)

    for body in (message.text, message.html):
        assert "$50.00" in body
        assert "Amount due" not in body
        assert "Pay now" not in body


def test_a_partial_payment_email_still_says_what_is_due(account):
    make_bill(account, amounts=(5000,))
    payment = payment_record_offline(account=account, amount=2000, method=Payment.Method.CHEQUE, reference="1001")
    message = email_for(NoticeKind.PAYMENT_RECEIVED, account=account, payment=payment)
    assert "Amount due: $30.00" in message.text


def test_a_reminder_still_asks_for_payment(account):
    bill = make_bill(account, amounts=(5000,))
    message = email_for(NoticeKind.DUE_UPCOMING, account=account, bill=bill)
    assert "Amount due: $50.00" in message.text and "Pay now" in message.html


def test_guest_enrolment_emails_come_from_the_biller_with_a_plain_subject(tom_and_jerry, mailoutbox, settings):
    from billing.enrolment.guest import guest_enrollment_links_send, guest_enrollment_record
    from billing.payments.core import confirmation_number_new

    settings.DEFAULT_FROM_EMAIL = "Billpay <billing@example.com>"
    account = CustomerAccountFactory(biller=tom_and_jerry)
    payment = Payment.objects.create(
        biller=tom_and_jerry, account=account, confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.GUEST_WEB, method=Payment.Method.CARD, status=Payment.Status.SUCCEEDED,
        currency="USD", amount=5000, payer_email="guest@example.com", received_at=timezone.now(),
    )  # fmt: skip
    request = guest_enrollment_record(payment=payment, email="guest@example.com", paperless=True)
    guest_enrollment_links_send(enrollment_request_id=request.pk)

    (message,) = mailoutbox
    assert parseaddr(message.from_email) == ("Tom & Jerry Water", "billing@example.com")
    assert "Tom & Jerry Water" in message.subject and "&amp;" not in message.subject


def test_an_invitation_shows_its_expiry_on_the_billers_clock_with_the_zone_named(tom_and_jerry, mailoutbox):
    import datetime as dt

    from accounts import invitations

    tom_and_jerry.time_zone = "America/Chicago"
    tom_and_jerry.save()
    account = CustomerAccountFactory(biller=tom_and_jerry, email="ana@example.com")
    sent = dt.datetime(2026, 11, 13, 16, 36, tzinfo=dt.UTC)  # 10:36 in Chicago; the link lasts 14 days

    invitations.invitation_issue(account=account, kind="join", now=sent)

    (message,) = mailoutbox
    assert "November 27, 2026, 10:36\u202fAM Chicago" in message.body
    assert "4:36" not in message.body
    assert "November 27, 2026, 10:36\u202fAM Chicago" in message.alternatives[0][0]
    assert parseaddr(message.from_email)[0] == "Tom & Jerry Water"


def test_allauths_emails_are_the_billers_and_name_the_public_address(client, tom_and_jerry, mailoutbox, settings):
    settings.SITE_URL = PUBLIC
    settings.BILLPAY_BILLER_SLUG = tom_and_jerry.slug

    response = client.post(
        reverse("account_signup"),
        {"email": "dana@example.com", "password1": "A-payer-Passw0rd!", "password2": "A-payer-Passw0rd!"},
        HTTP_HOST="127.0.0.1:8810",
    )

    assert response.status_code == 302
    (message,) = mailoutbox
    assert parseaddr(message.from_email) == ("Tom & Jerry Water", "billing@example.com")
    assert "127.0.0.1" not in message.body and "8810" not in message.body
    assert re.search(rf"{re.escape(PUBLIC)}/accounts/confirm-email/\S+", message.body)
    assert "Hello from Tom & Jerry Water!" in message.body
    assert "pay.riverside.example" in message.body.split("Thank you for using")[1]
