"""Direct-debit mandates: the bank account checked before anything reaches the gateway, the exact mandate text, the
mandate row with the payer's acceptance, and its status (active, inactive, revoked) from the payer, staff and the
gateway's `mandate.updated` events.

An IBAN is not card data and may pass through our server on its way to the gateway, but it is never stored and never
logged whole: the mandate keeps the bank's name, the country and the last 4 digits.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from schwifty import IBAN
from schwifty.exceptions import InvalidChecksumDigits, InvalidCountryCode, InvalidLength, SchwiftyException

from billing.events import status_move
from billing.errors import ApplicationError
from billing.models import BankMandate, Biller, BillingEvent, CustomerAccount, PaymentMethod
from billing.signals import mandate_accepted

from . import gateway as gateway_api
from .gateway import BankAccountDetails, GatewayError, MandateAcceptance, PaymentDeclined

logger = logging.getLogger(__name__)

Status = BankMandate.Status


# --------------------------------------------------------------------------------------------------------------------
# The bank account, checked before it is sent


@dataclass(frozen=True)
class CheckedBankAccount:
    details: BankAccountDetails
    bank_name: str
    country: str
    last4: str


def iban_check(value: str) -> IBAN:
    """The IBAN the payer typed (spaces and case do not matter), or ApplicationError saying what is wrong with it."""
    compact = "".join((value or "").split()).upper()
    if not compact:
        raise ApplicationError(_("Enter your IBAN."))
    try:
        iban = IBAN(compact)
    except InvalidCountryCode:
        raise ApplicationError(
            _("The IBAN must start with a country code such as DE or FR. Please check it.")
        ) from None
    except InvalidLength:
        raise ApplicationError(
            _("This IBAN has the wrong number of characters for its country. Please check it.")
        ) from None
    except InvalidChecksumDigits:
        raise ApplicationError(_("This IBAN is not valid: a character may be mistyped. Please check it.")) from None
    except SchwiftyException:
        raise ApplicationError(_("This IBAN is not valid. Please check it.")) from None
    if not iban.in_sepa_zone:
        raise ApplicationError(_("Only bank accounts in the SEPA area can be debited. Please use another account."))
    return iban


def bank_account_check(
    *, kind: str, account_number: str, holder_name: str, holder_email: str
) -> CheckedBankAccount:
    """Check an IBAN's country, length and checksum (schwifty) and the holder's name before anything reaches the
    gateway. Raises ApplicationError with a message for the payer; nothing is sent or stored then."""
    if kind != PaymentMethod.Kind.SEPA_DEBIT:
        raise ApplicationError(_("This kind of bank account cannot be debited here."))
    holder_name = " ".join((holder_name or "").split())
    if len(holder_name) < 2:
        raise ApplicationError(_("Enter the account holder's name as the bank knows it."))
    iban = iban_check(account_number)
    return CheckedBankAccount(
        details=BankAccountDetails(
            kind=kind, account_number=iban.compact, holder_name=holder_name, holder_email=holder_email.strip()
        ),
        bank_name=(iban.bank_name or "")[:100],
        country=iban.country_code,
        last4=iban.compact[-4:],
    )


# --------------------------------------------------------------------------------------------------------------------
# The mandate text


def mandate_reference_new() -> str:
    # SEPA allows up to 35 characters; letters and digits with no look-alikes, easy to read out on the phone.
    alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
    return "BPM-" + "".join(secrets.choice(alphabet) for _ in range(12))


def mandate_text(*, biller: Biller, usage: str) -> str:
    """The mandate exactly as the payer reads it, in the active language: who may debit (the biller's name and SEPA
    creditor identifier), the payer's rights and the refund period, and the pre-notification. Stored as shown; the
    mandate's own reference is given with it in the confirmation e-mail."""
    parts = [
        _(
            "By accepting this mandate, you authorise (A) %(creditor)s and Stripe, its payment service provider, to "
            "send instructions to your bank to debit your account and (B) your bank to debit your account in "
            "accordance with those instructions."
        ) % {"creditor": biller.name},
        _(
            "As part of your rights, you are entitled to a refund from your bank under the terms and conditions of "
            "your agreement with your bank. A refund must be claimed within 8 weeks starting from the date on which "
            "your account was debited. Your rights are explained in a statement that you can obtain from your bank."
        ),
        _(
            "Creditor: %(creditor)s. Creditor identifier: %(identifier)s. Your mandate reference is in the "
            "confirmation e-mail and on every debit notice."
        ) % {"creditor": biller.name, "identifier": biller.sepa_creditor_identifier},
    ]
    if usage == BankMandate.Usage.MULTI_USE:
        parts.append(
            _(
                "This mandate covers the bills of this account that autopay pays. We will tell you the amount and "
                "date of each debit at least %(days)d days before it. You can revoke this mandate at any time in "
                "your payment settings; no debit is made after that."
            ) % {"days": biller.debit_notice_days}
        )
    else:
        parts.append(_("This mandate covers this one payment only, debited now for the amount shown."))
    return "\n\n".join(str(p) for p in parts)


def bank_debit_available(biller: Biller) -> bool:
    """Bank debits need the biller's SEPA creditor identifier (it is part of every mandate) and euros."""
    return bool(biller.sepa_creditor_identifier) and biller.currency.upper() == "EUR"


# --------------------------------------------------------------------------------------------------------------------
# The mandate row


def bank_payment_method_create(*, checked: CheckedBankAccount, idempotency_key: str) -> str:
    """The gateway's payment method for a checked bank account. Returns its id; raises ApplicationError when the
    gateway refuses the account or cannot be reached (nothing was debited)."""
    try:
        method = gateway_api.get_gateway().create_bank_payment_method(
            bank_account=checked.details, idempotency_key=idempotency_key
        )
    except PaymentDeclined as declined:
        raise ApplicationError(declined.payer_message) from declined
    except GatewayError as error:
        raise ApplicationError(
            _("Paying by bank is not available right now. Nothing was debited. Please try again later.")
        ) from error
    return method.id


def mandate_record(
    *,
    account: CustomerAccount,
    checked: CheckedBankAccount,
    gateway_payment_method_id: str,
    usage: str,
    reference: str,
    text: str,
    acceptance: MandateAcceptance,
    user=None,
    payment_method: PaymentMethod | None = None,
    gateway_mandate_id: str | None = None,
    gateway_reference: str = "",
    confirm_by_email: bool = True,
) -> BankMandate:
    """Write the mandate as the payer accepted it (pending until the gateway or the first debit says more). The
    confirmation e-mail follows after commit (billing.signals.mandate_accepted) unless `confirm_by_email` is false
    (demo data: nobody accepted it on a page)."""
    biller = account.biller
    mandate = BankMandate.objects.create(
        biller=biller, account=account, user=user, payment_method=payment_method, scheme=checked.details.kind,
        usage=usage, reference=reference, gateway_mandate_id=gateway_mandate_id,
        gateway_reference=gateway_reference[:100], gateway_payment_method_id=gateway_payment_method_id,
        holder_name=checked.details.holder_name[:200], holder_email=checked.details.holder_email,
        bank_name=checked.bank_name, bank_country=checked.country, last4=checked.last4, creditor_name=biller.name,
        creditor_identifier=biller.sepa_creditor_identifier, mandate_text=text,
        language=(translation.get_language() or "")[:8],
        accepted_at=dt.datetime.fromtimestamp(acceptance.accepted_at, tz=dt.UTC),
        ip=acceptance.ip or None, user_agent=acceptance.user_agent[:500],
        status=Status.ACTIVE if gateway_mandate_id else Status.PENDING,
    )  # fmt: skip
    _mandate_event(mandate, from_status="", to_status=mandate.status, message=f"accepted ({usage})")
    mandate_pk = mandate.pk
    if confirm_by_email:
        transaction.on_commit(
            lambda: mandate_accepted.send_robust(sender=BankMandate, mandate_id=mandate_pk), robust=True
        )
    logger.info("mandate %s accepted for account %s (…%s)", mandate.reference, account.pk, checked.last4)
    return mandate


def _mandate_event(mandate: BankMandate, *, from_status: str, to_status: str, message: str, actor=None) -> None:
    from billing.events import event_record

    event_record(
        kind=BillingEvent.Kind.MANDATE, account=mandate.account, from_status=from_status, to_status=to_status,
        message=f"mandate {mandate.reference}: {message}", actor=actor,
    )  # fmt: skip


def mandate_status_move(*, mandate: BankMandate, to: str, message: str = "", actor=None) -> None:
    """Move a locked mandate through BankMandate.TRANSITIONS, with an event in the account's history."""
    if mandate.status == to:
        return
    status_move(
        mandate, to,
        error=lambda: _("A %(from)s mandate cannot become %(to)s.")
        % {"from": Status(mandate.status).label.lower(), "to": Status(to).label.lower()},
        changes={"status_changed_at": timezone.now()},
        record=lambda from_status: _mandate_event(
            mandate, from_status=from_status, to_status=to, message=message, actor=actor
        ),
    )  # fmt: skip


def mandate_lock(mandate_id: int) -> BankMandate:
    return BankMandate.objects.select_for_update().get(pk=mandate_id)


def mandate_revoke(*, mandate: BankMandate, actor=None, reason: str = "revoked by the payer") -> BankMandate:
    """Revoke a mandate: from now on nothing is debited under it. Every debit re-checks the mandate under its locks
    before it is sent, so a charge already planned debits nothing. A debit already sent to the bank is not recalled
    (the payer's bank refund right covers it)."""
    with transaction.atomic():
        locked = mandate_lock(mandate.pk)
        if locked.status == Status.REVOKED:
            return locked
        mandate_status_move(mandate=locked, to=Status.REVOKED, message=reason, actor=actor)
    return locked


# Stripe's mandate statuses and ours.
_GATEWAY_STATUSES = {"active": Status.ACTIVE, "inactive": Status.INACTIVE, "pending": Status.PENDING}


def mandate_sync(*, data: dict, event_created: int | None, source: str) -> BankMandate | None:
    """Record a `mandate.updated` event: the gateway's mandate id and reference, and its status (inactive stops the
    debits). Events may come in any order and more than once: an event older than the newest applied changes nothing,
    and a revoked mandate stays revoked. localstripe has no mandates, so the signed event's object is what is read."""
    mandate_id = data.get("id") or ""
    method = data.get("payment_method")
    method_id = method.get("id") if isinstance(method, dict) else method
    with transaction.atomic():
        found = BankMandate.objects.filter(gateway_mandate_id=mandate_id).values_list("pk", flat=True).first()
        if found is None and method_id:
            found = (
                BankMandate.objects.filter(gateway_payment_method_id=method_id, gateway_mandate_id__isnull=True)
                .order_by("-pk")
                .values_list("pk", flat=True)
                .first()
            )
        if found is None:
            logger.info("mandate %s belongs to no mandate of ours (%s)", mandate_id, source)
            return None
        mandate = mandate_lock(found)
        created = int(event_created or 0)
        if created and created < mandate.last_event_created:
            return mandate
        details = data.get("payment_method_details") or {}
        reference = (details.get(details.get("type") or mandate.scheme) or {}).get("reference") or ""
        mandate.gateway_mandate_id = mandate.gateway_mandate_id or mandate_id or None
        mandate.gateway_reference = reference[:100] or mandate.gateway_reference
        mandate.last_event_created = max(created, mandate.last_event_created)
        mandate.save(update_fields=["gateway_mandate_id", "gateway_reference", "last_event_created"])
        to = _GATEWAY_STATUSES.get(data.get("status") or "")
        if to and mandate.status != Status.REVOKED and mandate.can_transition_to(to):
            mandate_status_move(mandate=mandate, to=to, message=f"gateway says {data.get('status')} ({source})")
    return mandate


def mandate_activate_on_debit(*, mandate_id: int, source: str) -> None:
    """The bank took a debit under a pending mandate: it works. Inside the caller's transaction."""
    mandate = mandate_lock(mandate_id)
    if mandate.status == Status.PENDING:
        mandate_status_move(mandate=mandate, to=Status.ACTIVE, message=f"first debit accepted ({source})")
