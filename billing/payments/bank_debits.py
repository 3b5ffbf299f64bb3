"""One-time bank debits from the pay screen (guest or signed-in), and what a returned debit tells the payer.

The payer types the IBAN and the account holder's name and accepts the mandate on our page; there is no stripe.js
step (an IBAN is not card data): the server checks the IBAN, starts the account's one online payment (the same
exactly-once start as cards), creates the gateway's payment method, records the mandate and confirms the debit with
the payer's acceptance (sent to real Stripe as mandate_data). A debit processes for days; docs/payments.md says how
it counts on the bills meanwhile.
"""

from __future__ import annotations

import hashlib
import secrets

from django.db import transaction
from django.utils.translation import gettext as _

from billing.errors import ApplicationError
from billing.models import BankMandate, CustomerAccount, Payment, PaymentAttempt

from .attempts import account_lock
from .gateway import MandateAcceptance, bank_decline_classify
from .mandates import (
    bank_account_check,
    bank_debit_available,
    bank_payment_method_create,
    mandate_record,
    mandate_reference_new,
    mandate_text,
)
from .online import ConfirmOutcome, payment_confirm, payment_start


def mandate_text_digest(text: str) -> str:
    """What the page sends back with the payer's acceptance, so the server knows the text it stores is the one that
    was shown (a biller setting changed in between asks the payer to read it again)."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def bank_debit_pay(
    *,
    account: CustomerAccount,
    payer_email: str,
    channel: str,
    amount: int | None,
    tip_percent: int | None,
    paperless_requested: bool,
    kind: str,
    account_number: str,
    holder_name: str,
    shown_text_digest: str,
    acceptance: MandateAcceptance,
    user=None,
) -> ConfirmOutcome:
    """Pay the account's bills once by bank debit under a one-time mandate. The IBAN is checked first: a bad one
    raises ApplicationError and nothing reaches the gateway. Exactly once like a card payment: the account's one
    in-flight payment is reused, and the debit is confirmed once under the account and payment locks."""
    biller = account.biller
    if not bank_debit_available(biller):
        raise ApplicationError(_("Paying by bank debit is not offered for this account."))
    checked = bank_account_check(
        kind=kind, account_number=account_number, holder_name=holder_name, holder_email=payer_email
    )
    text = mandate_text(biller=biller, usage=BankMandate.Usage.SINGLE_USE)
    if shown_text_digest != mandate_text_digest(text):
        raise ApplicationError(_("The mandate text has changed since this page was opened. Please read it again."))
    payment, _secret = payment_start(
        account=account, payer_email=payer_email, channel=channel, amount=amount, tip_percent=tip_percent,
        paperless_requested=paperless_requested, method=kind,
    )  # fmt: skip
    method_id = bank_payment_method_create(checked=checked, idempotency_key=f"bankpm-{payment.pk}-{secrets.token_hex(6)}")
    with transaction.atomic():
        account_lock(account.pk)
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        if payment.status != Payment.Status.PENDING:
            raise ApplicationError(_("A payment on this account is being processed. Please wait a minute and check again."))
        mandate = mandate_record(
            account=account, checked=checked, gateway_payment_method_id=method_id,
            usage=BankMandate.Usage.SINGLE_USE, reference=mandate_reference_new(), text=text, acceptance=acceptance,
            user=user if getattr(user, "is_authenticated", False) else None,
        )  # fmt: skip
        payment.mandate = mandate
        payment.payment_method_summary = mandate.summary[:64]
        payment.save(update_fields=["mandate", "payment_method_summary", "updated_at"])
    return payment_confirm(
        account_id=account.pk, payment_intent_id=payment.gateway_payment_id, payment_method_id=method_id,
        mandate_acceptance=acceptance,
    )  # fmt: skip


def bank_debit_return_reason(payment: Payment) -> str:
    """The bank's reason for returning a debit, in the payer's words (the last decline recorded on the payment)."""
    code = (
        PaymentAttempt.objects.filter(payment=payment).exclude(decline_code="").order_by("-pk")
        .values_list("decline_code", flat=True).first()
    )  # fmt: skip
    return str(bank_decline_classify(code or None).payer_message)


def bank_debit_notice_context(notification) -> dict:
    """The facts a bank-debit notice shows (billing.signals.notice_context_wanted): for the mandate confirmation, the
    one-time debit's amount and date; for a returned debit, the bank's reason in plain words. Empty otherwise."""
    from billing.money import format_money

    kind = notification.kind
    if kind == "mandate_confirmed" and notification.mandate_id:
        payment = notification.mandate.payments.order_by("pk").first()
        if payment is None:
            return {"debit": {}}
        return {"debit": {"amount": format_money(payment.total_charged, payment.currency), "date": payment.created_at}}
    if kind == "payment_failed" and notification.payment_id and notification.payment.is_bank_debit:
        payment = notification.payment
        return {"debit": {"returned": payment.applied_at is not None, "reason": bank_debit_return_reason(payment)}}
    return {}


def bank_debit_notice_context_give(sender, *, notification, **kwargs) -> dict:
    """notice_context_wanted receiver (connected in BillingConfig.ready())."""
    return bank_debit_notice_context(notification)
