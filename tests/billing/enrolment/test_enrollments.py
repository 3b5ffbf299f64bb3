"""Paperless and guest enrolment (billing/enrolment/): consent, paper-bill accounts, single-use guest links and the
mailbox code."""

import datetime as dt
import hashlib
import re

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.guest_enrolment import guest_autopay_complete
from accounts.models import AccountLink
from billing.enrolment.guest import (
    GUEST_CODE_MAX_ATTEMPTS,
    GUEST_CODE_MAX_SENDS,
    guest_enrollment_links_send,
    guest_enrollment_record,
    guest_link_code_check,
    guest_link_code_send,
    guest_paperless_confirm,
)
from billing.enrolment.links import token_hash
from billing.enrolment.paperless import paperless_cancel, paperless_current, paperless_enroll
from billing.enrolment.selectors import paper_bill_accounts
from billing.errors import ApplicationError
from billing.models import (
    AutopayEnrollment,
    GuestEnrollmentLink,
    GuestEnrollmentRequest,
    PaperlessEnrollment,
    Payment,
    PaymentMethod,
)
from billing.payments.core import confirmation_number_new
from tests.factories import CustomerAccountFactory, make_bill
from tests.billing.cards_support import CONSENT, gateway_pm, guest_card_payment, link_token, make_user

pytestmark = pytest.mark.django_db


def test_paperless_enrol_and_cancel_keep_consent_and_ip(account, user):
    enrollment = paperless_enroll(
        account=account, email="bills@example.com", consent_text=CONSENT, ip="198.51.100.7",
        via=PaperlessEnrollment.Via.PORTAL, user=user,
    )  # fmt: skip
    assert (enrollment.consent_text, enrollment.ip, enrollment.user) == (CONSENT, "198.51.100.7", user)
    assert enrollment.consented_at is not None and enrollment.is_active
    same = paperless_enroll(
        account=account, email="Bills@example.com", consent_text=CONSENT, ip="198.51.100.8",
        via=PaperlessEnrollment.Via.PORTAL,
    )  # fmt: skip
    assert same.pk == enrollment.pk  # the same address: nothing new to consent to

    ended = paperless_cancel(account=account, ip="198.51.100.9", user=user)
    assert ended.pk == enrollment.pk and ended.cancelled_ip == "198.51.100.9" and ended.cancelled_by == user
    assert paperless_current(account=account) is None
    assert paperless_cancel(account=account, ip=None) is None


def test_paperless_to_a_new_address_keeps_the_old_consent_on_record(account):
    old = paperless_enroll(
        account=account, email="a@example.com", consent_text=CONSENT, ip=None, via=PaperlessEnrollment.Via.INVITATION
    )
    new = paperless_enroll(
        account=account, email="b@example.com", consent_text=CONSENT, ip=None, via=PaperlessEnrollment.Via.PORTAL
    )
    old.refresh_from_db()
    assert old.cancelled_at is not None and new.is_active and new.email == "b@example.com"
    with pytest.raises(IntegrityError), transaction.atomic():
        PaperlessEnrollment.objects.filter(pk=old.pk).update(cancelled_at=None)  # one active per account


def test_paper_bill_accounts(biller):
    paper = CustomerAccountFactory(biller=biller)
    make_bill(paper)
    emailed = CustomerAccountFactory(biller=biller)
    make_bill(emailed)
    paperless_enroll(
        account=emailed, email="x@example.com", consent_text=CONSENT, ip=None, via=PaperlessEnrollment.Via.PORTAL
    )
    CustomerAccountFactory(biller=biller)  # no open bill
    draft_only = CustomerAccountFactory(biller=biller)
    make_bill(draft_only, issue=False)
    went_back = CustomerAccountFactory(biller=biller)
    make_bill(went_back)
    paperless_enroll(
        account=went_back, email="y@example.com", consent_text=CONSENT, ip=None, via=PaperlessEnrollment.Via.PORTAL
    )
    paperless_cancel(account=went_back, ip=None)
    assert list(paper_bill_accounts()) == sorted([paper, went_back], key=lambda a: a.account_number)


def test_guest_links_are_sent_once_per_choice_and_only_a_hash_is_kept(account, mailoutbox):
    payment = Payment.objects.create(
        biller=account.biller, account=account, confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.GUEST_WEB, method=Payment.Method.CARD, status=Payment.Status.SUCCEEDED,
        currency="USD", amount=5000, payer_email="guest@example.com", received_at=timezone.now(),
    )  # fmt: skip
    request = guest_enrollment_record(payment=payment, email="guest@example.com", paperless=True)
    assert guest_enrollment_links_send(enrollment_request_id=request.pk) == ["paperless"]
    assert guest_enrollment_links_send(enrollment_request_id=request.pk) == []
    guest_enrollment_record(payment=payment, email="guest@example.com", autopay=True)
    assert guest_enrollment_links_send(enrollment_request_id=request.pk) == ["autopay"]
    assert [m.to for m in mail.outbox] == [["guest@example.com"], ["guest@example.com"]]
    token = link_token(mail.outbox[0].body, "paperless")
    raw = token.split(":")[0]
    assert len(raw) >= 43  # 32 random bytes, base64
    assert not GuestEnrollmentLink.objects.filter(token_hash__contains=raw).exists()
    assert GuestEnrollmentLink.objects.get(purpose="paperless").token_hash == token_hash(raw)


def test_guest_paperless_link_enrols_once_and_expires(account, mailoutbox, client):
    payment = Payment.objects.create(
        biller=account.biller, account=account, confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.GUEST_WEB, method=Payment.Method.CARD, status=Payment.Status.SUCCEEDED,
        currency="USD", amount=5000, payer_email="guest@example.com", received_at=timezone.now(),
    )  # fmt: skip
    request = guest_enrollment_record(payment=payment, email="guest@example.com", paperless=True)
    guest_enrollment_links_send(enrollment_request_id=request.pk)
    token = link_token(mail.outbox[0].body, "paperless")

    enrollment = guest_paperless_confirm(token=token, ip="203.0.113.9")
    assert (enrollment.email, enrollment.via, enrollment.ip) == ("guest@example.com", "guest_receipt", "203.0.113.9")
    assert account.account_number in enrollment.consent_text
    request.refresh_from_db()
    assert request.consumed_at is not None
    with pytest.raises(ApplicationError):
        guest_paperless_confirm(token=token, ip=None)  # single use
    with pytest.raises(ApplicationError):
        guest_paperless_confirm(token=token[:-2] + "xx", ip=None)  # tampered

    GuestEnrollmentLink.objects.update(used_at=None, expires_at=timezone.now() - dt.timedelta(seconds=1))
    with pytest.raises(ApplicationError):
        guest_paperless_confirm(token=token, ip=None)  # expired


def guest_autopay_token(account, email="guest@example.com") -> tuple[str, GuestEnrollmentRequest]:
    payment = guest_card_payment(account, email=email)
    request = guest_enrollment_record(payment=payment, email=email, autopay=True)
    guest_enrollment_links_send(enrollment_request_id=request.pk)
    return link_token(mail.outbox[-1].body, "autopay"), request


def sent_code(link: GuestEnrollmentLink) -> str:
    """Ask for a code as the page does and read it from the e-mail that went to the guest's address."""
    guest_link_code_send(link=link)
    message = mail.outbox[-1]
    assert message.to == [link.request.email]
    return re.search(r"Your code is (\d{6})\.", message.body).group(1)


def test_guest_autopay_needs_the_code_sent_to_the_guest_then_saves_the_card_and_links_the_account(
    stripe_settings, account, mailoutbox
):
    token, request = guest_autopay_token(account)
    link = GuestEnrollmentLink.objects.get(purpose="autopay")
    with pytest.raises(ApplicationError):  # the link alone: no code asked for yet
        guest_autopay_complete(token=token, code="", user=None, ip=None)
    code = sent_code(link)
    link.refresh_from_db()
    assert code not in link.code_hash and link.code_hash != hashlib.sha256(code.encode()).hexdigest()  # keyed
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    with pytest.raises(ApplicationError):
        guest_autopay_complete(token=token, code=wrong, user=None, ip=None)
    link.refresh_from_db()
    assert link.code_attempts == 1
    assert not get_user_model().objects.exists() and not PaymentMethod.objects.exists()

    user, method, created = guest_autopay_complete(token=token, code=code, user=None, ip="203.0.113.10")
    assert created and user.email == "guest@example.com" and not user.has_usable_password()
    assert EmailAddress.objects.get(user=user).verified  # the code proved the mailbox
    assert (method.user, method.last4, method.is_default, method.saved_from_account) == (user, "4242", True, account)
    assert gateway_pm(method)["customer"] == user.gateway_customer.gateway_customer_id
    assert AccountLink.objects.get(user=user, customer_account=account).created_via == "guest_code"
    assert GuestEnrollmentRequest.objects.get(pk=request.pk).consumed_at is not None
    with pytest.raises(ApplicationError):
        guest_autopay_complete(token=token, code=code, user=user, ip=None)  # single use
    assert not AutopayEnrollment.objects.exists()  # turned on only when the payer accepts the mandate


def test_a_guest_code_is_single_use_expires_and_allows_few_wrong_tries(stripe_settings, account, mailoutbox):
    token, _request = guest_autopay_token(account)
    link = GuestEnrollmentLink.objects.get(purpose="autopay")
    code = sent_code(link)
    for _ in range(GUEST_CODE_MAX_ATTEMPTS):
        with pytest.raises(ApplicationError):
            guest_link_code_check(link=link, code="not-it")
    with pytest.raises(ApplicationError):  # the right code, after too many wrong ones
        guest_link_code_check(link=link, code=code)

    code = sent_code(link)  # a new code starts again
    GuestEnrollmentLink.objects.filter(pk=link.pk).update(code_expires_at=timezone.now() - dt.timedelta(seconds=1))
    with pytest.raises(ApplicationError):
        guest_link_code_check(link=link, code=code)

    code = sent_code(link)
    guest_link_code_check(link=link, code=code)
    with pytest.raises(ApplicationError):
        guest_link_code_check(link=link, code=code)
    for _ in range(GUEST_CODE_MAX_SENDS - 3):
        sent_code(link)
    with pytest.raises(ApplicationError):
        guest_link_code_send(link=link)


def test_a_login_of_another_address_gets_nothing_from_a_forwarded_autopay_link_even_with_a_code(
    stripe_settings, account, mailoutbox, django_user_model
):
    token, _request = guest_autopay_token(account)
    stranger = make_user(django_user_model, email="stranger@example.com")
    code = sent_code(GuestEnrollmentLink.objects.get(purpose="autopay"))
    with pytest.raises(ApplicationError):
        guest_autopay_complete(token=token, code=code, user=stranger, ip=None)
    assert not PaymentMethod.objects.exists() and not AccountLink.objects.exists()
