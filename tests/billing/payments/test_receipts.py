"""Receipts: the e-mail goes out once whoever records the success, signed links, the PDF and enrolment requests."""

import datetime as dt
import re
import threading

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from billing.enrolment.guest import guest_enrollment_record
from billing.models import Bill, GuestEnrollmentRequest, Payment, PaymentAllocation
from billing.payments import receipts
from billing.payments.core import confirmation_number_new
from notifications import receipts as receipt_notices
from notifications import sms
from notifications.models import NoticePreference, Notification
from notifications.services import notification_send, notifications_sweep
from notifications.tasks import notification_send_task
from tests.factories import make_bill
from tests.notice_sending import celery_eager  # noqa: F401


def succeeded_payment(account, **fields) -> Payment:
    make_bill(account, amounts=(5000,))
    values = {
        "biller": account.biller, "account": account, "confirmation_number": confirmation_number_new(),
        "channel": Payment.Channel.GUEST_WEB, "method": Payment.Method.CARD, "status": Payment.Status.SUCCEEDED,
        "currency": "USD", "amount": 5000, "fee_amount": 125, "payer_email": "payer@example.com",
        "payment_method_summary": "Visa •••• 4242", "received_at": timezone.now(),
    } | fields  # fmt: skip
    return Payment.objects.create(**values)


@pytest.mark.usefixtures("celery_eager")
def test_the_receipt_email_goes_out_once(account, mailoutbox, django_capture_on_commit_callbacks):
    payment = succeeded_payment(account)
    (bill,) = Bill.objects.filter(account=account)
    PaymentAllocation.objects.create(payment=payment, bill=bill, amount=5000)
    with django_capture_on_commit_callbacks(execute=True):
        assert receipt_notices.receipt_send(payment_id=payment.pk) is True
    with django_capture_on_commit_callbacks(execute=True):
        assert receipt_notices.receipt_send(payment_id=payment.pk) is False
    (message,) = mailoutbox
    assert message.to == ["payer@example.com"]  # the address the payer typed, not the account's
    assert payment.confirmation_number in message.body and "$51.25" in message.subject
    body = message.body
    assert "$51.25" in body and "$50.00" in body and "$1.25" in body and "Visa •••• 4242" in body
    assert f"- {bill.number}: $50.00" in body  # the bills paid
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and payment.confirmation_number in html and "Visa •••• 4242" in html
    link = next(line for line in body.splitlines() if "/pay/receipt/" in line)
    assert "?key=" in link
    token = link.split("?key=")[1].strip()
    assert receipts.receipt_token_valid(token, confirmation_number=payment.confirmation_number)
    (row,) = Notification.objects.filter(payment=payment)
    assert (row.kind, row.channel, row.status, row.recipient) == (
        "payment_received",
        "email",
        "sent",
        "payer@example.com",
    )


@pytest.mark.usefixtures("celery_eager")
def test_no_receipt_for_an_unfinished_payment(account, mailoutbox, django_capture_on_commit_callbacks):
    payment = succeeded_payment(account, status=Payment.Status.PENDING, received_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        assert receipt_notices.receipt_send(payment_id=payment.pk) is False
    assert mailoutbox == [] and not Notification.objects.exists()


@pytest.mark.usefixtures("celery_eager")
def test_a_failed_send_is_tried_again(account, mailoutbox, monkeypatch, django_capture_on_commit_callbacks):
    payment = succeeded_payment(account)

    def broken(self, *args, **kwargs):
        raise ConnectionRefusedError("smtp down")

    with monkeypatch.context() as patch:
        patch.setattr("django.core.mail.EmailMultiAlternatives.send", broken)
        with django_capture_on_commit_callbacks(execute=True):
            assert receipt_notices.receipt_send(payment_id=payment.pk) is True
    (row,) = Notification.objects.filter(payment=payment)
    assert (row.status, row.attempts) == ("pending", 1) and "smtp down" in row.last_error
    assert mailoutbox == []
    # The outbox retries it (the sweeper, once the backoff has passed); raising the notice again adds nothing.
    with django_capture_on_commit_callbacks(execute=True):
        assert receipt_notices.receipt_send(payment_id=payment.pk) is False
        notifications_sweep(now=timezone.now() + dt.timedelta(minutes=2))
    row.refresh_from_db()
    assert row.status == "sent" and len(mailoutbox) == 1


def test_a_broker_outage_leaves_the_receipt_to_the_sweeper(
    account, mailoutbox, monkeypatch, django_capture_on_commit_callbacks
):
    payment = succeeded_payment(account)

    def down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(notification_send_task, "delay", down)
    with django_capture_on_commit_callbacks(execute=True):
        assert receipt_notices.receipt_send(payment_id=payment.pk) is True
    (row,) = Notification.objects.filter(payment=payment)
    assert row.status == "pending" and row.next_attempt_at <= timezone.now()  # due for the next sweep at once
    assert notifications_sweep(enqueue=False).claimed == [row.pk]
    assert notification_send(notification_id=row.pk) == "sent" and len(mailoutbox) == 1


@pytest.mark.usefixtures("celery_eager")
def test_an_account_texting_gets_the_receipt_sms_once(
    account, mailoutbox, django_capture_on_commit_callbacks, settings
):
    settings.SMS_BACKEND = "locmem"
    sms.outbox.clear()
    account.phone, account.sms_notices = "+1 555 0100 777", True
    account.save()
    # SMS by default is for the urgent kinds only; the payer opted into receipts by text.
    NoticePreference.objects.create(account=account, kind="payment_received", channel="sms", enabled=True)
    payment = succeeded_payment(account)
    with django_capture_on_commit_callbacks(execute=True):
        receipt_notices.payment_after_success(payment_id=payment.pk)
    with django_capture_on_commit_callbacks(execute=True):
        receipt_notices.payment_after_success(payment_id=payment.pk)  # the success recorded twice (webhook + return)
    (text,) = sms.outbox
    assert text.to == "+15550100777" and payment.confirmation_number in text.body and "$51.25" in text.body
    assert len(mailoutbox) == 1
    assert sorted(Notification.objects.filter(payment=payment).values_list("channel", "status")) == [
        ("email", "sent"),
        ("sms", "sent"),
    ]
    sms.outbox.clear()


def test_after_success_never_raises_into_the_caller(account, monkeypatch, caplog):
    payment = succeeded_payment(account)
    monkeypatch.setattr(receipt_notices, "receipt_send", lambda **kw: 1 / 0)
    receipt_notices.payment_after_success(payment_id=payment.pk)  # logged, not raised
    assert "receipt or enrolment after success failed" in caplog.text


def test_signed_receipt_links(account):
    payment = succeeded_payment(account)
    other = succeeded_payment(account)
    token = receipts.receipt_token(payment)
    assert receipts.receipt_token_valid(token, confirmation_number=payment.confirmation_number)
    assert not receipts.receipt_token_valid(token, confirmation_number=other.confirmation_number)
    assert not receipts.receipt_token_valid(token + "x", confirmation_number=payment.confirmation_number)
    assert not receipts.receipt_token_valid(token, confirmation_number=payment.confirmation_number, max_age=-1)


def test_the_pdf_shows_the_receipt(account):
    payment = succeeded_payment(account)
    data = receipts.receipt_pdf(payment)
    assert data.startswith(b"%PDF-") and len(data) > 1000


def test_enrolment_requests_only_add(account):
    payment = succeeded_payment(account)
    assert guest_enrollment_record(payment=payment, email="a@example.com") is None
    guest_enrollment_record(payment=payment, email="a@example.com", autopay=True)
    guest_enrollment_record(payment=payment, email="b@example.com", paperless=True)
    request = GuestEnrollmentRequest.objects.get()
    assert (request.email, request.paperless, request.autopay, request.account_id) == (
        "b@example.com", True, True, account.pk,
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_eager")
def test_concurrent_senders_send_one_receipt(require_postgres, account):
    payment = succeeded_payment(account)
    mail.outbox = []
    barrier = threading.Barrier(6)
    results = []

    def send():
        try:
            barrier.wait(timeout=10)
            results.append(receipt_notices.receipt_send(payment_id=payment.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [False] * 5 + [True]
    assert len(mail.outbox) == 1


def test_recording_a_guest_enrolment_emails_its_confirmation_link(account, django_capture_on_commit_callbacks):
    from billing.payments.offline import payment_record_offline

    make_bill(account, amounts=(1000,))
    payment = payment_record_offline(account=account, amount=1000, method="cash")
    mail.outbox = []
    with django_capture_on_commit_callbacks(execute=True):
        guest_enrollment_record(payment=payment, email="guest@example.com", paperless=True)
    assert [m.to for m in mail.outbox] == [["guest@example.com"]]
    assert "paperless" in mail.outbox[0].body.lower()


# --- What is still owed after a partial payment (issue 10, item 6) ---------------------------------------------------


def _paid(account, *, amount) -> Payment:
    """A succeeded online payment of `amount` applied to the account's bills (oldest first), as the core does."""
    from django.db import transaction

    from billing.payments.allocations import payment_apply

    payment = Payment.objects.create(
        biller=account.biller, account=account, confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.GUEST_WEB, method=Payment.Method.CARD, status=Payment.Status.SUCCEEDED,
        currency="USD", amount=amount, payer_email="payer@example.com", received_at=timezone.now(),
    )  # fmt: skip
    with transaction.atomic():
        payment_apply(payment=payment)
    return payment


def _receipt_page(client, payment) -> str:
    session = client.session
    session[receipts.SESSION_KEY] = [payment.confirmation_number]
    session.save()
    response = client.get(f"/pay/receipt/{payment.confirmation_number}/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_partial_payments_receipt_shows_what_is_still_owed(client, account):
    make_bill(account, amounts=(5000,), due_in_days=-5)
    make_bill(account, amounts=(3000,), due_in_days=20)
    payment = _paid(account, amount=6000)
    context = receipts.receipt_context(payment)
    assert context["still_owed"] == "$20.00"
    html = _receipt_page(client, payment)
    assert 'data-testid="still-owed">$20.00<' in html
    assert "Still owed on this account on" in html


def test_a_full_payments_receipt_says_nothing_is_owed_even_after_a_new_bill(client, account):
    make_bill(account, amounts=(5000,))
    payment = _paid(account, amount=5000)
    later = make_bill(account, amounts=(7000,))
    Bill.objects.filter(pk=later.pk).update(issue_date=timezone.localdate() + dt.timedelta(days=30))
    assert receipts.receipt_context(payment)["still_owed"] == ""
    assert 'data-testid="still-owed"' not in _receipt_page(client, payment)


def test_the_receipt_page_never_shows_the_accounts_address_to_a_guest(client, account):
    """Issue 10, item 5: a guest who kept the masked address on file gets the receipt there; the receipt page (and
    its paperless offer) show it masked too, and the offer left as shown enrols that same address."""
    account.email = "jane.doe@example.com"
    account.save()
    payment = succeeded_payment(account, payer_email="jane.doe@example.com")
    html = _receipt_page(client, payment)
    assert "jane.doe@example.com" not in html
    assert "We're sending a copy of this receipt to j*******@e******.com." in html
    assert re.search(r'<input[^>]*name="email"[^>]*value="j\*{7}@e\*{6}\.com"', html)
    response = client.post(
        f"/pay/receipt/{payment.confirmation_number}/enrol/", {"paperless": "on", "email": "j*******@e******.com"}
    )
    assert response.status_code == 302
    assert GuestEnrollmentRequest.objects.get(payment=payment).email == "jane.doe@example.com"


def test_an_address_the_guest_typed_is_shown_as_typed(client, account):
    payment = succeeded_payment(account, payer_email="typed@example.org")
    html = _receipt_page(client, payment)
    assert "We're sending a copy of this receipt to typed@example.org." in html


@pytest.mark.parametrize(("paper", "points"), [("A4", (595, 842)), ("letter", (612, 792))])
def test_the_receipt_pdf_uses_the_billers_paper_size(account, paper, points):
    from io import BytesIO

    from pypdf import PdfReader

    account.biller.paper_size = paper
    account.biller.save()
    box = PdfReader(BytesIO(receipts.receipt_pdf(succeeded_payment(account)))).pages[0].mediabox
    assert (round(box.width), round(box.height)) == points


def test_the_receipt_pdf_follows_the_language_the_payer_chose(client, account, settings):
    from io import BytesIO

    from django.urls import reverse
    from pypdf import PdfReader

    account.language = "en"
    account.save()
    payment = succeeded_payment(account, received_at=dt.datetime(2026, 11, 27, 16, 36, tzinfo=dt.UTC))
    account.biller.time_zone = "America/Chicago"
    account.biller.save()
    url = reverse("billing:pay_receipt_pdf", args=[payment.confirmation_number])
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "es"

    response = client.get(url + f"?key={receipts.receipt_token(payment)}")

    text = PdfReader(BytesIO(response.content)).pages[0].extract_text()
    assert "Recibo de pago" in text
    assert "27 de noviembre de 2026, 10:36 Chicago" in text  # the biller's clock, the zone named
