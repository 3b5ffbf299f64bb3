"""Saved payment methods, paperless e-bills and autopay: services that write, then selectors that read.

- A login's cards hang off one gateway customer (`GatewayCustomer`). A card is added through a SetupIntent that
  stripe.js confirms in the browser; the server then reads the SetupIntent back, checks it belongs to this login and
  attaches its payment method (localstripe never attaches on its own; on real Stripe attaching again is harmless).
- Role changes (default, backup) lock the login's `GatewayCustomer` row first: it is the one row per login that every
  such change passes through, so two tabs cannot both make "the first card" the default. The partial unique
  constraints on `PaymentMethod` are the backstop.
- Paperless and autopay are per customer account; their consent is stored as it was shown, with the time and IP.
- A guest who asked for paperless or autopay on a payment gets e-mailed single-use links (`GuestEnrollmentLink`):
  a 256-bit random token, signed with a timestamp, of which only a SHA-256 is stored. The autopay link never saves
  a card or makes a login on its own: a one-time code e-mailed to the guest's address must come back first, and the
  card then pays only accounts its login reached through the lookup or a proven link (`payment_method_may_pay`).

Card charges by autopay are a later issue; `autopay_upcoming` tells the payer (and the reminders) what would happen.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, QuerySet, Window
from django.db.models.functions import RowNumber
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..errors import ApplicationError
from ..gateway import GatewayError, PaymentDeclined, get_gateway
from ..models import (
    AutopayEnrollment,
    Bill,
    CustomerAccount,
    EnrollmentEvent,
    GatewayCustomer,
    GuestEnrollmentLink,
    GuestEnrollmentRequest,
    PaperlessEnrollment,
    PaymentMethod,
)
from ..money import format_money

logger = logging.getLogger(__name__)

GUEST_LINK_SALT = "billpay.guest-enrolment"
GUEST_LINK_VALID = dt.timedelta(days=7)
# The one-time code that proves the mailbox before an autopay link saves a card.
GUEST_CODE_SALT = "billpay.guest-code"
GUEST_CODE_DIGITS = 6
GUEST_CODE_VALID = dt.timedelta(minutes=10)
GUEST_CODE_MAX_ATTEMPTS = 5  # wrong tries per code: 5 in a million
GUEST_CODE_MAX_SENDS = 5  # codes per link


# --- Consent texts: stored exactly as the payer saw them ------------------------------------------------------------


def paperless_consent_text(*, account: CustomerAccount) -> str:
    return _(
        "Send the bills for account %(number)s to my e-mail address instead of by post. Each e-mail links to the "
        "bill and the payment screen. I can go back to paper bills at any time."
    ) % {"number": account.account_number}


def autopay_consent_text(*, account: CustomerAccount) -> str:
    return _(
        "I authorise %(biller)s to charge the card I chose for each new bill on account %(number)s, on the day I "
        "chose, up to the maximum I set. A bill above my maximum is not charged: I get a reminder to pay it myself. "
        "I can pause or cancel autopay on this site at any time before a charge."
    ) % {"biller": account.biller.name, "number": account.account_number}


def _event(kind, *, user=None, account=None, autopay=None, from_status="", to_status="", message="", ip=None):
    EnrollmentEvent.objects.create(
        kind=kind, user=user, account=account, autopay=autopay, from_status=from_status, to_status=to_status,
        message=message[:500], ip=ip or None,
    )  # fmt: skip


# --- Saved payment methods -------------------------------------------------------------------------------------------


def gateway_customer_get_or_create(*, user) -> GatewayCustomer:
    """The login's gateway customer, created on first need. The idempotency key is per login, so a retried create
    on real Stripe returns the same customer; the unique user column settles a race between two requests."""
    existing = GatewayCustomer.objects.filter(user=user).first()
    if existing:
        return existing
    try:
        customer = get_gateway().create_customer(
            email=user.email, metadata={"user_id": str(user.pk)}, idempotency_key=f"customer-user-{user.pk}"
        )
    except GatewayError as error:
        raise ApplicationError(_("Saving cards is not available right now. Please try again later.")) from error
    try:
        with transaction.atomic():
            return GatewayCustomer.objects.create(user=user, gateway_customer_id=customer.id)
    except IntegrityError:
        return GatewayCustomer.objects.get(user=user)


def _lock_customer(user) -> GatewayCustomer:
    return GatewayCustomer.objects.select_for_update().get(user=user)


def payment_method_setup_start(*, user) -> str:
    """Start adding a card: a SetupIntent on the login's customer. Returns the client secret for stripe.js."""
    customer = gateway_customer_get_or_create(user=user)
    try:
        setup = get_gateway().create_setup_intent(
            customer=customer.gateway_customer_id,
            idempotency_key=f"setup-{user.pk}-{secrets.token_hex(8)}",
            metadata={"user_id": str(user.pk)},
        )
    except GatewayError as error:
        raise ApplicationError(_("Saving cards is not available right now. Please try again later.")) from error
    return setup.client_secret


def payment_method_save_from_setup(*, user, setup_intent_id: str, ip: str | None = None) -> PaymentMethod:
    """stripe.js confirmed the SetupIntent: read it back (never trust the browser's word), check it is this login's
    and succeeded, then attach its payment method and save the card."""
    customer = GatewayCustomer.objects.filter(user=user).first()
    if customer is None or not setup_intent_id:
        raise ApplicationError(_("We couldn't save that card. Please try again."))
    try:
        setup = get_gateway().retrieve_setup_intent(setup_intent_id)
    except GatewayError as error:
        raise ApplicationError(_("We couldn't save that card. Please try again.")) from error
    if setup.customer_id != customer.gateway_customer_id or not setup.payment_method_id:
        raise ApplicationError(_("We couldn't save that card. Please try again."))
    if setup.status != "succeeded":
        raise ApplicationError(_("Your bank did not confirm the card. Nothing was saved. Please try again."))
    return payment_method_attach(user=user, gateway_payment_method_id=setup.payment_method_id, ip=ip)


def payment_method_attach(
    *, user, gateway_payment_method_id: str, ip: str | None = None, saved_from_account: CustomerAccount | None = None
) -> PaymentMethod:
    """Attach a gateway payment method to the login's customer and save it. The first card becomes the default.
    Saving the same card twice returns the saved one. `saved_from_account`: the account whose guest payment the
    card comes from (kept on the card as its history)."""
    saved = PaymentMethod.objects.filter(gateway_payment_method_id=gateway_payment_method_id).first()
    if saved is not None:
        if saved.user_id != user.pk or saved.removed_at is not None:
            raise ApplicationError(_("We couldn't save that card. Please add it again."))
        return saved
    customer = gateway_customer_get_or_create(user=user)
    try:
        method = get_gateway().attach_payment_method(gateway_payment_method_id, customer=customer.gateway_customer_id)
    except PaymentDeclined as declined:
        raise ApplicationError(declined.payer_message) from declined
    except GatewayError as error:
        raise ApplicationError(_("We couldn't save that card. Please try again later.")) from error
    with transaction.atomic():
        _lock_customer(user)
        saved = PaymentMethod.objects.filter(gateway_payment_method_id=method.id).first()
        if saved is not None:  # a second tab saved it while we were at the gateway (we waited on the lock)
            return saved
        has_default = PaymentMethod.objects.filter(user=user, is_default=True).exists()
        saved = PaymentMethod.objects.create(
            user=user,
            gateway_customer_id=customer.gateway_customer_id,
            gateway_payment_method_id=method.id,
            brand=(method.card_brand or "")[:32],
            last4=(method.card_last4 or "")[:4],
            exp_month=method.exp_month,
            exp_year=method.exp_year,
            is_default=not has_default,
            saved_from_account=saved_from_account,
        )
        _event(EnrollmentEvent.Kind.CARD_ADDED, user=user, message=saved.summary, ip=ip)
    return saved


SAVED_CARD_NEEDS_LOOKUP = gettext_lazy(
    "To pay this account with a saved card, link it again with the account number and the details from a bill."
)


def payment_method_may_pay(*, user, account) -> bool:
    """Whether `user`'s saved cards may pay `account`: only when the login reached the account through the
    protected lookup or a link whose address it proved (AccountLink.VERIFIED_VIA). A link made before links had to
    prove the address may have come from a forwarded e-mail, so a card, above all one saved from a guest payment,
    never pays through it."""
    from accounts.models import AccountLink  # accounts imports billing; a module-level import would be circular

    return AccountLink.objects.filter(
        user=user, customer_account=account, created_via__in=AccountLink.VERIFIED_VIA
    ).exists()


def _own_saved_method(user, payment_method: PaymentMethod) -> PaymentMethod:
    """Re-read under the caller's lock; someone else's card or a removed one is refused the same way."""
    method = PaymentMethod.objects.filter(pk=payment_method.pk, user=user, removed_at__isnull=True).first()
    if method is None:
        raise ApplicationError(_("That card is not saved to your login."))
    return method


def payment_method_make_default(*, user, payment_method: PaymentMethod, ip: str | None = None) -> PaymentMethod:
    """Make a card the default. When the backup is promoted, the old default becomes the backup (a swap)."""
    with transaction.atomic():
        _lock_customer(user)
        method = _own_saved_method(user, payment_method)
        if method.is_default:
            return method
        old_default = PaymentMethod.objects.filter(user=user, is_default=True).first()
        was_backup = method.is_backup
        # Clear before set: the partial unique constraints are checked statement by statement.
        PaymentMethod.objects.filter(user=user, is_default=True).update(is_default=False)
        if was_backup:
            PaymentMethod.objects.filter(pk=method.pk).update(is_backup=False)
        PaymentMethod.objects.filter(pk=method.pk).update(is_default=True)
        if was_backup and old_default is not None:
            PaymentMethod.objects.filter(pk=old_default.pk).update(is_backup=True)
        _event(EnrollmentEvent.Kind.CARD_ROLE, user=user, message=f"default: {method.summary}", ip=ip)
    method.refresh_from_db()
    return method


def payment_method_make_backup(*, user, payment_method: PaymentMethod, ip: str | None = None) -> PaymentMethod:
    """Make a card the backup: the one tried when a charge on the default fails. The default cannot also be it."""
    with transaction.atomic():
        _lock_customer(user)
        method = _own_saved_method(user, payment_method)
        if method.is_default:
            raise ApplicationError(_("Your default card cannot also be the backup. Choose another card."))
        if method.is_backup:
            return method
        PaymentMethod.objects.filter(user=user, is_backup=True).update(is_backup=False)
        PaymentMethod.objects.filter(pk=method.pk).update(is_backup=True)
        _event(EnrollmentEvent.Kind.CARD_ROLE, user=user, message=f"backup: {method.summary}", ip=ip)
    method.refresh_from_db()
    return method


def payment_method_clear_backup(*, user, ip: str | None = None) -> None:
    with transaction.atomic():
        _lock_customer(user)
        if PaymentMethod.objects.filter(user=user, is_backup=True).update(is_backup=False):
            _event(EnrollmentEvent.Kind.CARD_ROLE, user=user, message="no backup", ip=ip)


def payment_method_remove(*, user, payment_method: PaymentMethod, ip: str | None = None) -> None:
    """Remove a card: detached at the gateway, kept here as history. A card that pays autopay must be replaced
    there first. If it was the default, the backup (or else the newest card) becomes the default."""
    method = _own_saved_method(user, payment_method)
    autopay = (
        AutopayEnrollment.objects.filter(payment_method=method, status__in=AutopayEnrollment.CURRENT_STATUSES)
        .select_related("account")
        .first()
    )
    if autopay is not None:
        raise ApplicationError(
            _(
                "This card pays autopay for account %(number)s. Choose another card for autopay, or cancel autopay, "
                "before removing it."
            )
            % {"number": autopay.account.account_number}
        )
    try:
        get_gateway().detach_payment_method(method.gateway_payment_method_id)
    except GatewayError as error:
        raise ApplicationError(_("We couldn't remove that card right now. Please try again later.")) from error
    with transaction.atomic():
        _lock_customer(user)
        method = _own_saved_method(user, method)
        was_default = method.is_default
        PaymentMethod.objects.filter(pk=method.pk).update(removed_at=timezone.now(), is_default=False, is_backup=False)
        if was_default:
            successor = (
                PaymentMethod.objects.filter(user=user, removed_at__isnull=True)
                .order_by("-is_backup", "-created_at", "-pk")
                .first()
            )
            if successor is not None:
                PaymentMethod.objects.filter(pk=successor.pk).update(is_backup=False)
                PaymentMethod.objects.filter(pk=successor.pk).update(is_default=True)
        _event(EnrollmentEvent.Kind.CARD_REMOVED, user=user, message=method.summary, ip=ip)


# --- Paperless e-bills ---------------------------------------------------------------------------------------------


def paperless_enroll(*, account, email, consent_text, ip, via, user=None) -> PaperlessEnrollment:
    """Bills for `account` go to `email` instead of paper. Enrolling again with the same address keeps the current
    enrolment; a new address ends it and starts a new one, so each consent stays on record as given."""
    if via not in PaperlessEnrollment.Via.values:
        raise ValueError(f"unknown paperless origin {via!r}")
    email = (email or "").strip()
    if not email:
        raise ApplicationError(_("Enter the e-mail address for your bills."))
    with transaction.atomic():
        account = CustomerAccount.objects.select_for_update().get(pk=account.pk)
        current = PaperlessEnrollment.objects.filter(account=account, cancelled_at__isnull=True).first()
        if current is not None and current.email.lower() == email.lower():
            return current
        now = timezone.now()
        if current is not None:
            current.cancelled_at, current.cancelled_ip, current.cancelled_by = now, ip or None, user
            current.save(update_fields=["cancelled_at", "cancelled_ip", "cancelled_by"])
        enrollment = PaperlessEnrollment.objects.create(
            account=account, email=email, consent_text=consent_text, consented_at=now, ip=ip or None, via=via,
            user=user,
        )  # fmt: skip
        _event(EnrollmentEvent.Kind.PAPERLESS_ON, user=user, account=account, message=f"{email} ({via})", ip=ip)
    return enrollment


def paperless_cancel(*, account, ip, user=None) -> PaperlessEnrollment | None:
    """Back to paper bills. Returns the ended enrolment, or None when there was none."""
    with transaction.atomic():
        account = CustomerAccount.objects.select_for_update().get(pk=account.pk)
        current = PaperlessEnrollment.objects.filter(account=account, cancelled_at__isnull=True).first()
        if current is None:
            return None
        current.cancelled_at, current.cancelled_ip, current.cancelled_by = timezone.now(), ip or None, user
        current.save(update_fields=["cancelled_at", "cancelled_ip", "cancelled_by"])
        _event(EnrollmentEvent.Kind.PAPERLESS_OFF, user=user, account=account, message=current.email, ip=ip)
    return current


# --- Autopay --------------------------------------------------------------------------------------------------------


def autopay_enroll(
    *,
    account: CustomerAccount,
    user,
    payment_method: PaymentMethod,
    charge_rule: str,
    days_before: int | None = None,
    max_amount: int | None = None,
    consent_text: str,
    ip: str | None = None,
    replace: bool = False,
) -> AutopayEnrollment:
    """Turn autopay on for `account` with one of `user`'s saved cards. With `replace`, the account's current
    enrolment (active, paused or suspended) is cancelled in the same transaction, so changing the card, the day or
    the maximum leaves a fresh mandate on record."""
    if charge_rule not in AutopayEnrollment.ChargeRule.values:
        raise ApplicationError(_("Choose when to charge."))
    if charge_rule == AutopayEnrollment.ChargeRule.DAYS_BEFORE:
        if days_before is None or not 1 <= days_before <= AutopayEnrollment.MAX_DAYS_BEFORE:
            raise ApplicationError(
                _("Choose between 1 and %(max)d days before the due date.") % {"max": AutopayEnrollment.MAX_DAYS_BEFORE}
            )
    else:
        days_before = None
    if max_amount is not None and max_amount <= 0:
        raise ApplicationError(_("The maximum must be more than zero, or left empty."))
    from accounts.models import AccountLink  # accounts imports billing; a module-level import would be circular

    if not AccountLink.objects.filter(user=user, customer_account=account).exists():
        raise ApplicationError(_("That account is not linked to your login."))
    if not payment_method_may_pay(user=user, account=account):
        raise ApplicationError(str(SAVED_CARD_NEEDS_LOOKUP))
    with transaction.atomic():
        account = CustomerAccount.objects.select_for_update(of=("self",)).select_related("biller").get(pk=account.pk)
        _lock_customer(user)
        method = _own_saved_method(user, payment_method)
        if method.is_expired(timezone.localdate()):
            raise ApplicationError(_("That card has expired. Choose another card."))
        current = AutopayEnrollment.objects.filter(
            account=account, status__in=AutopayEnrollment.CURRENT_STATUSES
        ).first()
        if current is not None:
            if not replace:
                raise ApplicationError(_("Autopay is already set up for this account."))
            _autopay_move(current, AutopayEnrollment.Status.CANCELLED, user=user, ip=ip, message="replaced")
        now = timezone.now()
        try:
            with transaction.atomic():
                enrollment = AutopayEnrollment.objects.create(
                    account=account, user=user, payment_method=method, charge_rule=charge_rule,
                    days_before=days_before, max_amount=max_amount, currency=account.biller.currency,
                    status=AutopayEnrollment.Status.ACTIVE, consent_text=consent_text, consented_at=now,
                    ip=ip or None, payment_method_summary=method.summary, status_changed_at=now,
                )  # fmt: skip
        except IntegrityError:  # another login of the account enrolled between our read and our insert
            raise ApplicationError(_("Autopay is already set up for this account.")) from None
        _event(
            EnrollmentEvent.Kind.AUTOPAY_ENROLLED, user=user, account=account, autopay=enrollment,
            to_status=enrollment.status, message=method.summary, ip=ip,
        )  # fmt: skip
    return enrollment


def _autopay_move(enrollment: AutopayEnrollment, to_status: str, *, user=None, ip=None, message="") -> None:
    if not enrollment.can_transition_to(to_status):
        raise ApplicationError(
            _("Autopay cannot go from “%(from)s” to “%(to)s”.")
            % {"from": enrollment.get_status_display(), "to": AutopayEnrollment.Status(to_status).label}
        )
    from_status = enrollment.status
    enrollment.status, enrollment.status_changed_at = to_status, timezone.now()
    enrollment.save(update_fields=["status", "status_changed_at", "updated_at"])
    _event(
        EnrollmentEvent.Kind.AUTOPAY_STATUS, user=user, account=enrollment.account, autopay=enrollment,
        from_status=from_status, to_status=to_status, message=message, ip=ip,
    )  # fmt: skip


def autopay_transition(
    *, enrollment: AutopayEnrollment, to_status: str, user=None, ip: str | None = None, message: str = ""
) -> AutopayEnrollment:
    """The one way an enrolment changes status; an illegal move raises ApplicationError and changes nothing."""
    with transaction.atomic():
        locked = (
            AutopayEnrollment.objects.select_for_update(of=("self",))
            .select_related("account", "payment_method")
            .get(pk=enrollment.pk)
        )
        if to_status == AutopayEnrollment.Status.ACTIVE and locked.payment_method.removed_at is not None:
            raise ApplicationError(_("The card for autopay was removed. Set up autopay again with another card."))
        _autopay_move(locked, to_status, user=user, ip=ip, message=message)
    return locked


def autopay_pause(*, enrollment, user=None, ip=None) -> AutopayEnrollment:
    return autopay_transition(enrollment=enrollment, to_status=AutopayEnrollment.Status.PAUSED, user=user, ip=ip)


def autopay_resume(*, enrollment, user=None, ip=None) -> AutopayEnrollment:
    return autopay_transition(enrollment=enrollment, to_status=AutopayEnrollment.Status.ACTIVE, user=user, ip=ip)


def autopay_cancel(*, enrollment, user=None, ip=None) -> AutopayEnrollment:
    return autopay_transition(enrollment=enrollment, to_status=AutopayEnrollment.Status.CANCELLED, user=user, ip=ip)


# --- Guest enrolment links (from a guest payment's receipt) ----------------------------------------------------------


def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


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
            raw = secrets.token_urlsafe(32)  # 256 bits
            GuestEnrollmentLink.objects.create(
                request=request,
                purpose=purpose,
                token_hash=_token_hash(raw),
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
        send_mail(subject, body, None, [request.email])
    return list(urls)


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
        .filter(token_hash=_token_hash(raw), purpose=purpose)
        .first()
    )
    if link is None or link.used_at is not None or link.expires_at <= timezone.now():
        raise invalid
    return link


def _guest_link_use(link: GuestEnrollmentLink) -> GuestEnrollmentLink:
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
        _guest_link_use(link)
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
        send_mail(subject, body, None, [locked.request.email])


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


def guest_link_holder_ok(*, link: GuestEnrollmentLink, user) -> bool:
    """Whether this login may take what the link offers: it holds the address the link went to, verified."""
    from allauth.account.models import EmailAddress

    return EmailAddress.objects.filter(user=user, email__iexact=link.request.email, verified=True).exists()


def guest_autopay_complete(
    *, token: str, code: str, user=None, password: str | None = None, ip: str | None
) -> tuple[object, PaymentMethod, bool]:
    """The guest followed the autopay link and proved the mailbox with the code it was sent: save the card they
    paid with (read from the payment's intent at the gateway, attached to the login's customer) and link the account.

    `user` is the signed-in login, which must hold the link's address verified; None makes a login for that address
    (verified: the code proved the mailbox just now). Returns (login, card, login_created). The link alone, or the
    link and a login of another address, gets nothing. Autopay itself is turned on by the payer on the next page,
    where they see and accept the mandate."""
    from accounts.models import AccountLink
    from accounts.services import account_link_grant
    from django.contrib.auth import get_user_model

    link = guest_link_get(token=token, purpose=GuestEnrollmentLink.Purpose.AUTOPAY)
    request = link.request
    if user is not None and not guest_link_holder_ok(link=link, user=user):
        raise ApplicationError(_("This link was sent to another e-mail address. Nothing was saved to your login."))
    if user is None and get_user_model().objects.filter(email__iexact=request.email).exists():
        raise ApplicationError(_("There is already a login with this e-mail address. Please sign in."))
    payment = request.payment
    if not payment.gateway_payment_id:
        raise ApplicationError(_("We couldn't find the card from that payment. Please add a card instead."))
    try:
        intent = get_gateway().retrieve_payment_intent(payment.gateway_payment_id)
    except GatewayError as error:
        raise ApplicationError(
            _("We couldn't reach our payment processor. Please try the link again later.")
        ) from error
    if not intent.succeeded or not intent.payment_method_id:
        raise ApplicationError(_("We couldn't find the card from that payment. Please add a card instead."))
    guest_link_code_check(link=link, code=code)
    created = user is None
    if created:
        user = _guest_login_create(email=request.email, password=password)
    method = payment_method_attach(
        user=user, gateway_payment_method_id=intent.payment_method_id, ip=ip, saved_from_account=request.account
    )
    with transaction.atomic():
        _guest_link_use(link)
        account_link_grant(user=user, account=request.account, via=AccountLink.Via.GUEST_CODE)
    return user, method, created


def _guest_login_create(*, email: str, password: str | None):
    """A login for a guest who just proved the mailbox with a code: so the address is verified. Without a password
    the payer signs in with a code sent by e-mail. Only guest_autopay_complete calls this, after the code."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model

    User = get_user_model()
    email = email.strip().lower()
    if User.objects.filter(email__iexact=email).exists():
        raise ApplicationError(_("There is already a login with this e-mail address. Please sign in."))
    with transaction.atomic():
        user = User.objects.create_user(email=email, password=password or None)
        if not password:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


# --- Selectors ------------------------------------------------------------------------------------------------------


def user_payment_methods(*, user) -> QuerySet[PaymentMethod]:
    return PaymentMethod.objects.filter(user=user, removed_at__isnull=True).order_by(
        "-is_default", "-is_backup", "-created_at", "-pk"
    )


def autopay_current(*, account) -> AutopayEnrollment | None:
    return (
        AutopayEnrollment.objects.filter(account=account, status__in=AutopayEnrollment.CURRENT_STATUSES)
        .select_related("payment_method")
        .first()
    )


def paperless_current(*, account) -> PaperlessEnrollment | None:
    return PaperlessEnrollment.objects.filter(account=account, cancelled_at__isnull=True).first()


@dataclass(frozen=True)
class UpcomingCharge:
    bill: Bill
    charge_on: dt.date
    amount: int
    currency: str
    above_max: bool

    @property
    def amount_display(self) -> str:
        return format_money(self.amount, self.currency)


@dataclass
class EnrollmentStatus:
    autopay: AutopayEnrollment | None = None
    paperless: PaperlessEnrollment | None = None
    upcoming: UpcomingCharge | None = None

    @property
    def max_display(self) -> str:
        if self.autopay is None or self.autopay.max_amount is None:
            return ""
        return format_money(self.autopay.max_amount, self.autopay.currency)


def _upcoming(enrollment: AutopayEnrollment, bill: Bill, today: dt.date) -> UpcomingCharge:
    amount = bill.total - bill.amount_paid
    return UpcomingCharge(
        bill=bill,
        charge_on=max(enrollment.charge_date(bill.due_date), today),
        amount=amount,
        currency=bill.currency,
        above_max=enrollment.max_amount is not None and amount > enrollment.max_amount,
    )


def enrollment_statuses(*, account_ids: list[int], today: dt.date) -> dict[int, EnrollmentStatus]:
    """Autopay, paperless and the next autopay charge of each account. Three queries however many accounts (two
    when none has autopay on)."""
    statuses = {account_id: EnrollmentStatus() for account_id in account_ids}
    if not statuses:
        return statuses
    for enrollment in AutopayEnrollment.objects.filter(
        account_id__in=account_ids, status__in=AutopayEnrollment.CURRENT_STATUSES
    ).select_related("payment_method"):
        statuses[enrollment.account_id].autopay = enrollment
    for enrollment in PaperlessEnrollment.objects.filter(account_id__in=account_ids, cancelled_at__isnull=True):
        statuses[enrollment.account_id].paperless = enrollment
    active = [i for i, s in statuses.items() if s.autopay and s.autopay.status == AutopayEnrollment.Status.ACTIVE]
    if active:
        # The next bill autopay would pay: the earliest-due payable bill with a balance that is not overdue yet.
        # (An overdue bill is the payer's to pay by hand; whether autopay catches up on it is the charging issue's.)
        bills = (
            Bill.objects.filter(
                account_id__in=active, status__in=Bill.PAYABLE_STATUSES, amount_paid__lt=F("total"), due_date__gte=today
            )
            .annotate(rank=Window(RowNumber(), partition_by=[F("account_id")], order_by=[F("due_date"), F("pk")]))
            .filter(rank=1)
        )
        for bill in bills:
            statuses[bill.account_id].upcoming = _upcoming(statuses[bill.account_id].autopay, bill, today)
    return statuses


def autopay_upcoming(*, account, today: dt.date) -> UpcomingCharge | None:
    """The next charge autopay would make on `account` (date and amount of the next bill under the rule, and
    whether it is above the payer's maximum), or None when autopay is not on or nothing is due."""
    return enrollment_statuses(account_ids=[account.pk], today=today)[account.pk].upcoming


def paper_bill_accounts(*, biller=None) -> QuerySet[CustomerAccount]:
    """Accounts that still need paper bills: an issued bill still open, and no active paperless enrolment."""
    open_bill = Bill.objects.filter(
        account=OuterRef("pk"), status__in=Bill.PAYABLE_STATUSES, amount_paid__lt=F("total")
    )
    paperless = PaperlessEnrollment.objects.filter(account=OuterRef("pk"), cancelled_at__isnull=True)
    accounts = CustomerAccount.objects.filter(Exists(open_bill)).exclude(Exists(paperless))
    if biller is not None:
        accounts = accounts.filter(biller=biller)
    return accounts.select_related("biller").order_by("biller_id", "account_number")
