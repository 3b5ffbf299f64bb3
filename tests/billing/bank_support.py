"""Shared helpers for the bank-debit tests: a biller that offers SEPA debits, IBANs localstripe knows, the payer's
acceptance, and a one-time debit through the service."""

from __future__ import annotations

import json
import time

from billing.models import BankMandate, Payment
from billing.payments.bank_debits import bank_debit_pay, mandate_text_digest
from billing.payments.gateway import MandateAcceptance
from billing.payments.mandates import mandate_text
from tests import stripe_support

GOOD_IBAN = "DE89 3704 0044 0532 0130 00"  # localstripe debits it at once
# localstripe's failing IBAN: its debit is `processing`, then fails about 0.5 s later (payment_intent.payment_failed).
RETURNED_IBAN = "DE62370400440532013001"
BAD_CHECKSUM_IBAN = "DE89370400440532013001"
CREDITOR_ID = "DE98ZZZ09999999999"
USER_AGENT = "Mozilla/5.0 (Linux; Android 14) Billpay test"


def sepa_biller(biller):
    biller.currency = "EUR"
    biller.sepa_creditor_identifier = CREDITOR_ID
    biller.save()
    return biller


def acceptance(ip: str = "203.0.113.9") -> MandateAcceptance:
    return MandateAcceptance(accepted_at=int(time.time()), ip=ip, user_agent=USER_AGENT)


def pay_by_bank(account, *, iban=GOOD_IBAN, holder="Jana Novak", email="jana@example.com", user=None, amount=None):
    text = mandate_text(biller=account.biller, usage=BankMandate.Usage.SINGLE_USE)
    return bank_debit_pay(
        account=account, payer_email=email, channel=Payment.Channel.GUEST_WEB, amount=amount, tip_percent=None,
        paperless_requested=False, kind="sepa_debit", account_number=iban, holder_name=holder,
        shown_text_digest=mandate_text_digest(text), acceptance=acceptance(), user=user,
    )  # fmt: skip


def intent_event(event_id: str, event_type: str, intent: dict, *, created: int | None = None) -> tuple[bytes, str]:
    """A signed delivery in Stripe's event shape."""
    body = json.dumps(
        {
            "id": event_id, "object": "event", "type": event_type, "api_version": "2024-06-20",
            "created": created or int(time.time()), "livemode": False, "data": {"object": intent},
        }
    ).encode()  # fmt: skip
    return body, stripe_support.sign_webhook_payload(body, stripe_support.WEBHOOK_SECRET)


def post_event(client, body: bytes, signature: str):
    return client.post(
        "/stripe/webhook/", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
    )


def wait_for_intent(localstripe, intent_id: str, status: str, *, timeout: float = 5.0) -> dict:
    """Poll localstripe until the intent reaches `status` (its SEPA failures come about 0.5 s after the confirm)."""
    deadline = time.monotonic() + timeout
    while True:
        intent = next(i for i in stripe_support.payment_intents(localstripe) if i["id"] == intent_id)
        if intent["status"] == status or time.monotonic() > deadline:
            return intent
        time.sleep(0.05)
