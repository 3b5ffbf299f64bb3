"""Guest enrolment: a guest who asked for paperless or autopay on a payment gets e-mailed single-use links
(`GuestEnrollmentLink`): a 256-bit random token, signed with a timestamp, of which only a SHA-256 is stored. The
autopay link never saves a card or makes a login on its own: a one-time code e-mailed to the guest's address must come
back first, and the card then pays only accounts its login reached through the lookup or a proven link
(`billing.methods.services.payment_method_may_pay`). The login and the account link are the accounts app's: it
completes the autopay link (accounts/guest_enrolment.py) with guest_autopay_card_find and guest_link_use here.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _

from billing.payments import gateway as gateway_api
from billing.payments.gateway import GatewayError

from ..errors import ApplicationError
from ..models import GuestEnrollmentLink, GuestEnrollmentRequest, PaperlessEnrollment, Payment
from .links import token_hash, token_new
from .paperless import paperless_consent_text, paperless_enroll

GUEST_LINK_SALT = "billpay.guest-enrolment"
GUEST_LINK_VALID = dt.timedelta(days=7)
# The one-time code that proves the mailbox before an autopay link saves a card.
GUEST_CODE_SALT = "billpay.guest-code"
GUEST_CODE_DIGITS = 6
GUEST_CODE_VALID = dt.timedelta(minutes=10)
GUEST_CODE_MAX_ATTEMPTS = 5  # wrong tries per code: 5 in a million
GUEST_CODE_MAX_SENDS = 5  # codes per link


def _signed(raw: str) -> str:
    return signing.TimestampSigner(salt=GUEST_LINK_SALT).sign(raw)


def guest_enrollment_links_send(*, enrollment_request_id: int) -> list[str]:
    """E-mail the guest one link per choice they made (paperless, autopay) that has no link yet. Safe to call again
    after every tick on the receipt: a choice already sent is not sent twice. Returns the purposes sent."""
    with transaction.atomic():
        request = (
            GuestEnrollmentRequest.objects.select_for_update(of=("self",))
            .select_related("account__biller", "payment")
            .get(pk=enrollment_request_id)
        )
        if request.consumed_at is not None:
            return []
        wanted = [
            purpose
            for purpose, asked in (
                (GuestEnrollmentLink.Purpose.PAPERLESS, request.paperless),
                (GuestEnrollmentLink.Purpose.AUTOPAY, request.autopay),
            )
            if asked
        ]
        existing = set(GuestEnrollmentLink.objects.filter(request=request).values_list("purpose", flat=True))
        urls = {}
        for purpose in wanted:
            if purpose in existing:
                continue
            raw, digest = token_new()
            GuestEnrollmentLink.objects.create(
                request=request,
                purpose=purpose,
                token_hash=digest,
                expires_at=timezone.now() + GUEST_LINK_VALID,
            )
            name = (
                "accounts:guest_paperless"
                if purpose == GuestEnrollmentLink.Purpose.PAPERLESS
                else "accounts:guest_autopay"
            )
            urls[purpose] = f"{settings.SITE_URL}{reverse(name, args=[_signed(raw)])}"
        if not urls:
            return []
        account = request.account
        with translation.override(account.language or settings.LANGUAGE_CODE):
            context = {
                "biller": account.biller, "account": account, "days": GUEST_LINK_VALID.days,
                "paperless_url": urls.get(GuestEnrollmentLink.Purpose.PAPERLESS, ""),
                "autopay_url": urls.get(GuestEnrollmentLink.Purpose.AUTOPAY, ""),
                "card": request.payment.payment_method_summary,
            }  # fmt: skip
            subject = render_to_string("accounts/email/guest_enrollment_subject.txt", context).strip()
            body = render_to_string("accounts/email/guest_enrollment.txt", context)
        # Sent inside the transaction, as the receipt is: if sending fails, the links roll back and the next call
        # sends them again. Under the request's row lock, so two calls never both send.
        send_mail(subject, body, account.biller.email_sender(), [request.email])
    return list(urls)


def guest_enrollment_record(
    *, payment: Payment, email: str, paperless: bool = False, autopay: bool = False
) -> GuestEnrollmentRequest | None:
    """Record what a guest asked for (paperless bills, autopay with the card they paid with). Adds to an earlier
    request for the same payment, never takes a choice back. Nothing is enrolled here: the payer confirms through
    the link the payer-accounts flow e-mails, which marks the request consumed."""
    if not (paperless or autopay):
        return None
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        request, created = GuestEnrollmentRequest.objects.get_or_create(
            payment=locked,
            defaults={"account_id": locked.account_id, "email": email, "paperless": paperless, "autopay": autopay},
        )
        if not created:
            request.paperless = request.paperless or paperless
            request.autopay = request.autopay or autopay
            request.email = email or request.email
            request.save(update_fields=["paperless", "autopay", "email", "updated_at"])
        # E-mail the confirmation links once this is committed (safe to repeat: only choices without a link yet).
        transaction.on_commit(lambda: guest_enrollment_links_send(enrollment_request_id=request.pk))
    return request


def guest_link_get(*, token: str, purpose: str) -> GuestEnrollmentLink:
    """The link a token names, if it is genuine, unexpired and unused. One message for every failure."""
    invalid = ApplicationError(
        _("This link has expired or was already used. Your payment is not affected; you can sign up on the site.")
    )
    try:
        raw = signing.TimestampSigner(salt=GUEST_LINK_SALT).unsign(token or "", max_age=GUEST_LINK_VALID)
    except signing.BadSignature:
        raise invalid from None
    link = (
        GuestEnrollmentLink.objects.select_related("request__account__biller", "request__payment")
        .filter(token_hash=token_hash(raw), purpose=purpose)
        .first()
    )
    if link is None or link.used_at is not None or link.expires_at <= timezone.now():
        raise invalid
    return link


def guest_link_use(link: GuestEnrollmentLink) -> GuestEnrollmentLink:
    """Mark the link used under its row lock (a second click waits, then sees it used); the request is consumed
    once every link it asked for was used."""
    locked = GuestEnrollmentLink.objects.select_for_update().get(pk=link.pk)
    if locked.used_at is not None:
        raise ApplicationError(_("This link was already used."))
    locked.used_at = timezone.now()
    locked.save(update_fields=["used_at"])
    if not GuestEnrollmentLink.objects.filter(request_id=locked.request_id, used_at__isnull=True).exists():
        GuestEnrollmentRequest.objects.filter(pk=locked.request_id).update(consumed_at=locked.used_at)
    return locked


def guest_paperless_confirm(*, token: str, ip: str | None) -> PaperlessEnrollment:
    link = guest_link_get(token=token, purpose=GuestEnrollmentLink.Purpose.PAPERLESS)
    request = link.request
    with transaction.atomic():
        guest_link_use(link)
        return paperless_enroll(
            account=request.account, email=request.email, consent_text=paperless_consent_text(account=request.account),
            ip=ip, via=PaperlessEnrollment.Via.GUEST_RECEIPT,
        )  # fmt: skip


def _code_hash(link_pk: int, code: str) -> str:
    # Keyed with SECRET_KEY and bound to the link: a six-digit code's plain SHA-256 would be a table lookup away.
    return salted_hmac(GUEST_CODE_SALT, f"{link_pk}:{code}").hexdigest()


def guest_link_code_send(*, link: GuestEnrollmentLink) -> None:
    """E-mail a fresh one-time code to the address the link was sent to. Whoever holds a forwarded link can ask,
    but the code goes only to that mailbox. A new code replaces the last one; a link gets GUEST_CODE_MAX_SENDS."""
    with transaction.atomic():
        locked = (
            GuestEnrollmentLink.objects.select_for_update(of=("self",))
            .select_related("request__account__biller")
            .get(pk=link.pk)
        )
        if locked.used_at is not None or locked.expires_at <= timezone.now():
            raise ApplicationError(_("This link was already used."))
        if locked.codes_sent >= GUEST_CODE_MAX_SENDS:
            raise ApplicationError(
                _("We have sent the most codes we can for this link. Sign up on the site and add your card there.")
            )
        code = f"{secrets.randbelow(10**GUEST_CODE_DIGITS):0{GUEST_CODE_DIGITS}d}"
        locked.code_hash = _code_hash(locked.pk, code)
        locked.code_expires_at = timezone.now() + GUEST_CODE_VALID
        locked.code_attempts = 0
        locked.codes_sent += 1
        locked.save(update_fields=["code_hash", "code_expires_at", "code_attempts", "codes_sent"])
        account = locked.request.account
        with translation.override(account.language or settings.LANGUAGE_CODE):
            context = {"biller": account.biller, "code": code, "minutes": int(GUEST_CODE_VALID.total_seconds() // 60)}
            subject = render_to_string("accounts/email/guest_code_subject.txt", context).strip()
            body = render_to_string("accounts/email/guest_code.txt", context)
        # Under the row lock and inside the transaction: if sending fails, the code rolls back with it.
        send_mail(subject, body, account.biller.email_sender(), [locked.request.email])


def guest_link_code_check(*, link: GuestEnrollmentLink, code: str) -> None:
    """Use up the link's current code: right, unexpired, and fewer than GUEST_CODE_MAX_ATTEMPTS wrong tries.
    Raises ApplicationError otherwise (the wrong try is counted, committed before raising)."""
    code = "".join((code or "").split())
    with transaction.atomic():
        locked = GuestEnrollmentLink.objects.select_for_update().get(pk=link.pk)
        usable = (
            bool(locked.code_hash)
            and locked.code_expires_at is not None
            and locked.code_expires_at > timezone.now()
            and locked.code_attempts < GUEST_CODE_MAX_ATTEMPTS
        )
        right = usable and hmac.compare_digest(locked.code_hash, _code_hash(locked.pk, code))
        if right:  # single use
            locked.code_hash, locked.code_expires_at = "", None
            locked.save(update_fields=["code_hash", "code_expires_at"])
        elif usable:
            locked.code_attempts += 1
            locked.save(update_fields=["code_attempts"])
    if not right:
        raise ApplicationError(_("That code is wrong or has expired. Ask for a new code and try again."))


def guest_autopay_card_find(*, link: GuestEnrollmentLink) -> str:
    """The gateway's id of the card the guest paid with (read from the payment's intent), for the autopay link.
    Raises ApplicationError when there is none or the gateway cannot be reached. accounts.guest_enrolment saves it
    to the guest's login once the code proved the mailbox."""
    payment = link.request.payment
    if not payment.gateway_payment_id:
        raise ApplicationError(_("We couldn't find the card from that payment. Please add a card instead."))
    try:
        intent = gateway_api.get_gateway().retrieve_payment_intent(payment.gateway_payment_id)
    except GatewayError as error:
        raise ApplicationError(
            _("We couldn't reach our payment processor. Please try the link again later.")
        ) from error
    if not intent.succeeded or not intent.payment_method_id:
        raise ApplicationError(_("We couldn't find the card from that payment. Please add a card instead."))
    return intent.payment_method_id
