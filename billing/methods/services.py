"""Saved payment methods (cards): services that write.

- A login's cards hang off one gateway customer (`GatewayCustomer`). A card is added through a SetupIntent that
  stripe.js confirms in the browser; the server then reads the SetupIntent back, checks it belongs to this login and
  attaches its payment method (localstripe never attaches on its own; on real Stripe attaching again is harmless).
- Role changes (default, backup) lock the login's `GatewayCustomer` row first: it is the one row per login that every
  such change passes through, so two tabs cannot both make "the first card" the default. The partial unique
  constraints on `PaymentMethod` are the backstop.
- A saved card pays only accounts its login reached through the lookup or a proven link (`payment_method_may_pay`).
"""

from __future__ import annotations

import secrets

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing.payments import gateway as gateway_api
from billing.payments.attempts import our_key
from billing.payments.gateway import GatewayError, PaymentDeclined
from billing.payments.mandates import mandate_revoke

from ..access import payer_access
from ..events import enrollment_event_record
from ..errors import ApplicationError
from ..models import AutopayEnrollment, BankMandate, CustomerAccount, EnrollmentEvent, GatewayCustomer, PaymentMethod


def gateway_customer_get_or_create(*, user) -> GatewayCustomer:
    """The login's gateway customer, created on first need. The idempotency key is per login, so a retried create
    on real Stripe returns the same customer; the unique user column settles a race between two requests."""
    existing = GatewayCustomer.objects.filter(user=user).first()
    if existing:
        return existing
    try:
        customer = gateway_api.get_gateway().create_customer(
            email=user.email, metadata={"user_id": str(user.pk)}, idempotency_key=our_key("customer-user", user.pk)
        )
    except GatewayError as error:
        raise ApplicationError(_("Saving cards is not available right now. Please try again later.")) from error
    try:
        with transaction.atomic():
            return GatewayCustomer.objects.create(user=user, gateway_customer_id=customer.id)
    except IntegrityError:
        return GatewayCustomer.objects.get(user=user)


def gateway_customer_lock(user) -> GatewayCustomer:
    return GatewayCustomer.objects.select_for_update().get(user=user)


def payment_method_setup_start(*, user) -> str:
    """Start adding a card: a SetupIntent on the login's customer. Returns the client secret for stripe.js."""
    customer = gateway_customer_get_or_create(user=user)
    try:
        setup = gateway_api.get_gateway().create_setup_intent(
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
        setup = gateway_api.get_gateway().retrieve_setup_intent(setup_intent_id)
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
        method = gateway_api.get_gateway().attach_payment_method(
            gateway_payment_method_id, customer=customer.gateway_customer_id
        )
    except PaymentDeclined as declined:
        raise ApplicationError(declined.payer_message) from declined
    except GatewayError as error:
        raise ApplicationError(_("We couldn't save that card. Please try again later.")) from error
    with transaction.atomic():
        gateway_customer_lock(user)
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
        enrollment_event_record(EnrollmentEvent.Kind.CARD_ADDED, user=user, message=saved.summary, ip=ip)
    return saved


SAVED_CARD_NEEDS_LOOKUP = gettext_lazy(
    "To pay this account with a saved card, link it again with the account number and the details from a bill."
)


def payment_method_may_pay(*, user, account) -> bool:
    """Whether `user`'s saved cards may pay `account`: only when the login reached the account through the
    protected lookup or a link whose address it proved (AccountLink.VERIFIED_VIA). A link made before links had to
    prove the address may have come from a forwarded e-mail, so a card, above all one saved from a guest payment,
    never pays through it. The accounts app answers (billing.access)."""
    return payer_access().may_pay_with_saved_cards(user=user, account=account)


def payment_method_owned(user, payment_method: PaymentMethod) -> PaymentMethod:
    """Re-read under the caller's lock; someone else's card or a removed one is refused the same way."""
    method = PaymentMethod.objects.filter(pk=payment_method.pk, user=user, removed_at__isnull=True).first()
    if method is None:
        raise ApplicationError(_("That card is not saved to your login."))
    return method


def payment_method_make_default(*, user, payment_method: PaymentMethod, ip: str | None = None) -> PaymentMethod:
    """Make a card the default. When the backup is promoted, the old default becomes the backup (a swap)."""
    with transaction.atomic():
        gateway_customer_lock(user)
        method = payment_method_owned(user, payment_method)
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
        enrollment_event_record(EnrollmentEvent.Kind.CARD_ROLE, user=user, message=f"default: {method.summary}", ip=ip)
    method.refresh_from_db()
    return method


def payment_method_make_backup(*, user, payment_method: PaymentMethod, ip: str | None = None) -> PaymentMethod:
    """Make a card the backup: the one tried when a charge on the default fails. The default cannot also be it."""
    with transaction.atomic():
        gateway_customer_lock(user)
        method = payment_method_owned(user, payment_method)
        if method.is_default:
            raise ApplicationError(_("Your default card cannot also be the backup. Choose another card."))
        if method.is_backup:
            return method
        PaymentMethod.objects.filter(user=user, is_backup=True).update(is_backup=False)
        PaymentMethod.objects.filter(pk=method.pk).update(is_backup=True)
        enrollment_event_record(EnrollmentEvent.Kind.CARD_ROLE, user=user, message=f"backup: {method.summary}", ip=ip)
    method.refresh_from_db()
    return method


def payment_method_clear_backup(*, user, ip: str | None = None) -> None:
    with transaction.atomic():
        gateway_customer_lock(user)
        if PaymentMethod.objects.filter(user=user, is_backup=True).update(is_backup=False):
            enrollment_event_record(EnrollmentEvent.Kind.CARD_ROLE, user=user, message="no backup", ip=ip)


def payment_method_remove(*, user, payment_method: PaymentMethod, ip: str | None = None) -> None:
    """Remove a card: detached at the gateway, kept here as history. A card that pays autopay must be replaced
    there first. If it was the default, the backup (or else the newest card) becomes the default."""
    method = payment_method_owned(user, payment_method)
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
        gateway_api.get_gateway().detach_payment_method(method.gateway_payment_method_id)
    except GatewayError as error:
        raise ApplicationError(_("We couldn't remove that card right now. Please try again later.")) from error
    with transaction.atomic():
        gateway_customer_lock(user)
        method = payment_method_owned(user, method)
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
        enrollment_event_record(EnrollmentEvent.Kind.CARD_REMOVED, user=user, message=method.summary, ip=ip)
    if method.is_bank_account:
        # A removed bank account is debited no more: its standing mandate is revoked with it.
        mandate = BankMandate.objects.filter(payment_method=method).first()
        if mandate is not None:
            mandate_revoke(mandate=mandate, actor=user, reason="bank account removed by the payer")
