"""Saved bank accounts: a payer's bank account saved to their login under a standing (multi-use) mandate for one of
their accounts, for autopay. It is a `PaymentMethod` like a card (default, backup), debited only while its
`BankMandate` may debit; revoking the mandate stops every debit not yet sent, at once."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from billing.payments import gateway as gateway_api
from billing.payments.gateway import GatewayError, MandateAcceptance
from billing.payments.mandates import (
    bank_account_check,
    bank_debit_available,
    bank_payment_method_create,
    mandate_record,
    mandate_reference_new,
    mandate_revoke,
    mandate_text,
)

from ..events import enrollment_event_record
from ..errors import ApplicationError
from ..models import BankMandate, CustomerAccount, EnrollmentEvent, PaymentMethod
from .services import gateway_customer_get_or_create, gateway_customer_lock, payment_method_may_pay


def bank_account_save(
    *,
    user,
    account: CustomerAccount,
    kind: str,
    account_number: str,
    holder_name: str,
    holder_email: str,
    shown_text_digest: str,
    acceptance: MandateAcceptance,
) -> PaymentMethod:
    """Save a bank account to the login with a standing mandate for `account`. The IBAN is checked first (a bad one
    raises ApplicationError and nothing reaches the gateway); the gateway's payment method is attached to the login's
    customer (on real Stripe through a SetupIntent confirmed with the acceptance, which makes the Mandate). The first
    saved method becomes the default."""
    from billing.payments.bank_debits import mandate_text_digest

    if not bank_debit_available(account.biller):
        raise ApplicationError(_("Paying by bank debit is not offered for this account."))
    if not payment_method_may_pay(user=user, account=account):
        raise ApplicationError(_("To debit a bank account for this account, link it again with the account number."))
    checked = bank_account_check(
        kind=kind, account_number=account_number, holder_name=holder_name, holder_email=holder_email
    )
    text = mandate_text(biller=account.biller, usage=BankMandate.Usage.MULTI_USE)
    if shown_text_digest != mandate_text_digest(text):
        raise ApplicationError(_("The mandate text has changed since this page was opened. Please read it again."))
    customer = gateway_customer_get_or_create(user=user)
    reference = mandate_reference_new()
    method_id = bank_payment_method_create(checked=checked, idempotency_key=f"bankpm-{user.pk}-{reference}")
    try:
        gateway_mandate = gateway_api.get_gateway().setup_bank_mandate(
            customer=customer.gateway_customer_id, payment_method=method_id, acceptance=acceptance,
            idempotency_key=f"banksetup-{reference}",
        )  # fmt: skip
    except GatewayError as error:
        raise ApplicationError(_("We couldn't save that bank account. Please try again later.")) from error
    with transaction.atomic():
        gateway_customer_lock(user)
        has_default = PaymentMethod.objects.filter(user=user, is_default=True).exists()
        method = PaymentMethod.objects.create(
            user=user, kind=kind, gateway_customer_id=customer.gateway_customer_id,
            gateway_payment_method_id=method_id, last4=checked.last4, bank_name=checked.bank_name,
            bank_country=checked.country, holder_name=checked.details.holder_name[:200],
            holder_email=checked.details.holder_email, is_default=not has_default,
        )  # fmt: skip
        mandate_record(
            account=account, checked=checked, gateway_payment_method_id=method_id,
            usage=BankMandate.Usage.MULTI_USE, reference=reference, text=text, acceptance=acceptance, user=user,
            payment_method=method, gateway_mandate_id=gateway_mandate.id if gateway_mandate else None,
            gateway_reference=gateway_mandate.reference if gateway_mandate else "",
        )  # fmt: skip
        enrollment_event_record(
            EnrollmentEvent.Kind.CARD_ADDED, user=user, account=account, message=method.summary, ip=acceptance.ip
        )
    return method


def bank_mandate_revoke(*, user, payment_method: PaymentMethod, ip: str | None = None) -> BankMandate:
    """The payer revokes the mandate of one of their saved bank accounts: no debit is sent under it from now on
    (autopay falls back to the backup method, or stops and says so)."""
    mandate = BankMandate.objects.filter(payment_method=payment_method, payment_method__user=user).first()
    if mandate is None:
        raise ApplicationError(_("That bank account is not saved to your login."))
    mandate = mandate_revoke(mandate=mandate, actor=user, reason="revoked by the payer")
    enrollment_event_record(
        EnrollmentEvent.Kind.CARD_REMOVED, user=user, account=mandate.account,
        message=f"mandate {mandate.reference} revoked: {payment_method.summary}", ip=ip,
    )  # fmt: skip
    return mandate
