"""Receipts: the e-mail goes out once whoever records the success, signed links, the PDF and enrolment requests."""

import threading

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from billing import receipts
from billing.models import GuestEnrollmentRequest, Payment
from billing.services import confirmation_number_new
from tests.factories import make_bill


def succeeded_payment(account, **fields) -> Payment:
    make_bill(account, amounts=(5000,))
    values = {
        "biller": account.biller, "account": account, "confirmation_number": confirmation_number_new(),
        "channel": Payment.Channel.GUEST_WEB, "method": Payment.Method.CARD, "status": Payment.Status.SUCCEEDED,
        "currency": "USD", "amount": 5000, "fee_amount": 125, "payer_email": "payer@example.com",
        "payment_method_summary": "Visa •••• 4242", "received_at": timezone.now(),
    } | fields  # fmt: skip
    return Payment.objects.create(**values)


def test_the_receipt_email_goes_out_once(account, mailoutbox):
    payment = succeeded_payment(account)
    assert receipts.receipt_send(payment_id=payment.pk) is True
    assert receipts.receipt_send(payment_id=payment.pk) is False
    (message,) = mailoutbox
    assert message.to == ["payer@example.com"]
    assert payment.confirmation_number in message.subject
    assert "$51.25" in message.body and "Visa •••• 4242" in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and payment.confirmation_number in html
    link = next(line for line in message.body.splitlines() if "/pay/receipt/" in line)
    assert "?key=" in link


def test_no_receipt_for_an_unfinished_payment(account, mailoutbox):
    payment = succeeded_payment(account, status=Payment.Status.PENDING, received_at=None)
    assert receipts.receipt_send(payment_id=payment.pk) is False
    assert mailoutbox == []


def test_a_failed_send_is_not_marked_so_it_is_tried_again(account, mailoutbox, monkeypatch):
    payment = succeeded_payment(account)

    def broken(self, *args, **kwargs):
        raise ConnectionRefusedError("smtp down")

    with monkeypatch.context() as patch:
        patch.setattr("django.core.mail.EmailMultiAlternatives.send", broken)
        with pytest.raises(ConnectionRefusedError):
            receipts.receipt_send(payment_id=payment.pk)
    payment.refresh_from_db()
    assert payment.receipt_sent_at is None
    assert receipts.receipt_send(payment_id=payment.pk) is True and len(mailoutbox) == 1


def test_after_success_never_raises_into_the_caller(account, monkeypatch, caplog):
    payment = succeeded_payment(account)
    monkeypatch.setattr(receipts, "receipt_send", lambda **kw: 1 / 0)
    receipts.payment_after_success(payment_id=payment.pk)  # logged, not raised
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
    assert receipts.guest_enrollment_record(payment=payment, email="a@example.com") is None
    receipts.guest_enrollment_record(payment=payment, email="a@example.com", autopay=True)
    receipts.guest_enrollment_record(payment=payment, email="b@example.com", paperless=True)
    request = GuestEnrollmentRequest.objects.get()
    assert (request.email, request.paperless, request.autopay, request.account_id) == (
        "b@example.com", True, True, account.pk,
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_send_one_receipt(require_postgres, account):
    payment = succeeded_payment(account)
    mail.outbox = []
    barrier = threading.Barrier(6)
    results = []

    def send():
        try:
            barrier.wait(timeout=10)
            results.append(receipts.receipt_send(payment_id=payment.pk))
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
    from billing import services

    make_bill(account, amounts=(1000,))
    payment = services.payment_record_offline(account=account, amount=1000, method="cash")
    mail.outbox = []
    with django_capture_on_commit_callbacks(execute=True):
        receipts.guest_enrollment_record(payment=payment, email="guest@example.com", paperless=True)
    assert [m.to for m in mail.outbox] == [["guest@example.com"]]
    assert "paperless" in mail.outbox[0].body.lower()
