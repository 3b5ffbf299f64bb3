"""Helpers for the autopay tests: a payer with saved cards and an enrolment, a fake gateway that declines the way
Stripe does (errors built with the real SDK's `stripe.CardError`, translated by billing.payments.stripe_gateway), and a driver that
runs the planner, the sweeper and the charge task body the way beat and a worker would."""

from __future__ import annotations

import datetime as dt
import itertools

import stripe
from allauth.account.models import EmailAddress
from django.conf import settings
from django.utils import timezone

from billing.autopay.charging import autopay_charge, autopay_charge_batch
from billing.autopay.planning import autopay_plan, autopay_sweep
from billing.models import AutopayEnrollment, PaymentMethod
from billing.payments.gateway import IntentResult, IntentStatus
from billing.payments.stripe_gateway import _translate

_ids = itertools.count(1)


def make_user(django_user_model, email=None):
    email = email or f"payer{next(_ids)}@example.com"
    user = django_user_model.objects.create_user(email=email, password="A-payer-Passw0rd!")
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def saved_card(user, pm_id: str, *, last4="4242", default=False, backup=False, exp_year=2034, exp_month=12):
    return PaymentMethod.objects.create(
        user=user, gateway_customer_id=f"cus_{user.pk}", gateway_payment_method_id=pm_id, brand="visa", last4=last4,
        exp_month=exp_month, exp_year=exp_year, is_default=default, is_backup=backup,
    )  # fmt: skip


def enroll(account, user, card, *, max_amount=None, rule="on_due_date", days_before=None) -> AutopayEnrollment:
    now = timezone.now()
    return AutopayEnrollment.objects.create(
        account=account, user=user, payment_method=card, charge_rule=rule, days_before=days_before,
        max_amount=max_amount, currency=account.biller.currency, consent_text="I agree.", consented_at=now,
        payment_method_summary=card.summary, status_changed_at=now,
    )  # fmt: skip


def card_error(code: str, decline_code: str | None = None, *, intent_id: str | None = None) -> Exception:
    """What the Stripe SDK raises for a declined confirm, as billing.payments.stripe_gateway translates it (PaymentDeclined)."""
    error = {"type": "card_error", "code": code, "message": f"Your card was declined ({decline_code or code})."}
    if decline_code:
        error["decline_code"] = decline_code
    if intent_id:
        error["payment_intent"] = {"id": intent_id}
    sdk_error = stripe.CardError(error["message"], None, code, http_status=402, json_body={"error": error})
    return _translate(sdk_error, operation="payment_intents.confirm", payment_intent_id=intent_id)


# How a card behaves at confirm: "ok", "requires_action", or a (code, decline_code) decline.
OK = "ok"
THREE_DS = "requires_action"


class FakeGateway:
    """Stands in for billing.payments.stripe_gateway.StripeGateway in the autopay unit tests. `behaviour` maps a payment method id to
    one outcome or a list consumed one confirm at a time. Intents and calls are kept for the assertions."""

    def __init__(self, behaviour: dict):
        self.behaviour = behaviour
        self.intents: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []  # (operation, payment method id)

    def _result(self, intent_id: str) -> IntentResult:
        i = self.intents[intent_id]
        return IntentResult(
            id=intent_id, status=i["status"], amount=i["amount"], currency=i["currency"], payment_method_id=i["pm"],
            card_brand="visa", card_last4="4242" if i["status"] == IntentStatus.SUCCEEDED else None,
            error_code=i.get("code"), decline_code=i.get("decline_code"), metadata=i["metadata"],
        )  # fmt: skip

    def create_payment_intent(self, *, amount, currency, idempotency_key, customer=None, payment_method=None,
                              off_session=False, confirm=False, metadata=None, **_ignored):  # fmt: skip
        intent_id = f"pi_fake_{next(_ids)}"
        self.intents[intent_id] = {
            "status": IntentStatus.REQUIRES_CONFIRMATION, "amount": amount, "currency": currency.lower(),
            "pm": payment_method, "metadata": metadata or {}, "key": idempotency_key,
        }  # fmt: skip
        self.calls.append(("create", payment_method))
        return self._result(intent_id)

    def confirm_payment_intent(self, intent_id, *, idempotency_key, payment_method=None, off_session=False):
        intent = self.intents[intent_id]
        self.calls.append(("confirm", intent["pm"]))
        assert off_session, "autopay must charge off-session"
        outcome = self.behaviour.get(intent["pm"], OK)
        if isinstance(outcome, list):
            outcome = outcome.pop(0) if len(outcome) > 1 else outcome[0]
        if outcome == OK:
            intent["status"] = IntentStatus.SUCCEEDED
            return self._result(intent_id)
        if outcome == THREE_DS:
            intent["status"] = IntentStatus.REQUIRES_ACTION
            return self._result(intent_id)
        code, decline_code = outcome
        intent.update(status=IntentStatus.REQUIRES_PAYMENT_METHOD, code=code, decline_code=decline_code)
        raise card_error(code, decline_code, intent_id=intent_id)

    def retrieve_payment_intent(self, intent_id):
        self.calls.append(("retrieve", self.intents[intent_id]["pm"]))
        return self._result(intent_id)

    def cancel_payment_intent(self, intent_id, *, idempotency_key=None):
        self.calls.append(("cancel", self.intents[intent_id]["pm"]))
        self.intents[intent_id]["status"] = IntentStatus.CANCELED
        return self._result(intent_id)

    def confirms(self) -> list[str]:
        return [pm for op, pm in self.calls if op == "confirm"]

    def succeeded(self) -> list[str]:
        return [i for i, v in self.intents.items() if v["status"] == IntentStatus.SUCCEEDED]


def use_gateway(monkeypatch, gateway) -> None:
    monkeypatch.setattr("billing.payments.gateway.get_gateway", lambda: gateway)


class Driver:
    """Beat and a worker, by hand: plan, sweep (`days` ahead of now), and run each claimed row's task body."""

    def __init__(self, capture):
        self.capture = capture  # pytest-django's django_capture_on_commit_callbacks

    def plan(self, now=None):
        with self.capture(execute=True):
            return autopay_plan(now=now)

    def sweep(self, days: float = 1):
        with self.capture(execute=True):
            return autopay_sweep(now=timezone.now() + dt.timedelta(days=days), enqueue=False)

    def charge(self, charge_id: int) -> str:
        with self.capture(execute=True):
            return autopay_charge(charge_id=charge_id)

    def charge_batch(self, charge_ids: list[int]) -> list[str]:
        with self.capture(execute=True):
            outcomes = autopay_charge_batch(charge_ids=charge_ids)
        return [outcomes[pk] for pk in charge_ids]

    def run(self, days: float = 1) -> list[str]:
        """As the tasks the sweep enqueues: a reclaimed or re-enqueued row alone, the claimed rows in batches."""
        result = self.sweep(days)
        size = settings.AUTOPAY_CHARGE_BATCH_SIZE
        batches = [result.claimed[i : i + size] for i in range(0, len(result.claimed), size)]
        alone = [self.charge(pk) for pk in result.reclaimed + result.requeued]
        return alone + [outcome for batch in batches for outcome in self.charge_batch(batch)]
