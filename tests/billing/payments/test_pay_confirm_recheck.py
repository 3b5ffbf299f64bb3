"""Paying while autopay runs: `payment_confirm` checks what is owed again under the locks right before it confirms.

The payer's page was quoted 52.00; autopay (or the counter) paid the bill before the payer pressed Pay. Charging the
quote then would only be refunded, so the intent is canceled and nothing is charged. A balance that went up is charged
as quoted. Against a real localstripe; the autopay race on PostgreSQL with a second connection."""

import threading

import pytest
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from billing.autopay.charging import autopay_charge
from billing.autopay.planning import autopay_plan, autopay_sweep
from billing.models import AutopayCharge, Bill, BillingEvent, Payment, Refund
from billing.payments import online
from billing.payments.offline import payment_record_offline
from billing.payments.online import payment_confirm, payment_start
from tests import stripe_support
from tests.billing.autopay.test_autopay_runs import autopay_payer, intents
from tests.billing.cards_support import save_card
from tests.billing.payments.test_pay_flow import grant, start
from tests.factories import make_bill


def _guest_start(account) -> Payment:
    payment, _secret = payment_start(account=account, payer_email="guest@example.com", channel="guest_web")
    return payment


def _assert_canceled_and_nothing_charged(payment: Payment, outcome, localstripe) -> None:
    assert outcome.status == "balance_changed"
    assert "nothing was charged" in outcome.payer_message and "reload" in outcome.payer_message
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CANCELED
    assert [a.kind for a in payment.attempts.order_by("pk")] == ["create", "cancel"]  # never a confirm
    ours = [i for i in intents(localstripe) if i["id"] == payment.gateway_payment_id]
    assert [i["status"] for i in ours] == ["canceled"]
    assert not Refund.objects.filter(payment=payment).exists()
    assert BillingEvent.objects.filter(payment=payment, to_status="canceled", message__contains="balance changed").exists()


@pytest.mark.postgres
def test_autopay_paying_the_bill_right_before_the_guest_confirms_charges_the_guest_nothing(
    require_postgres, transactional_db, stripe_settings, localstripe, account, django_user_model, monkeypatch
):
    autopay_payer(account, django_user_model)  # autopay charges 4242
    bill = make_bill(account, amounts=(5200,), due_in_days=0)
    assert autopay_plan().created == 1
    (charge_id,) = autopay_sweep(now=timezone.now() + timezone.timedelta(days=1), enqueue=False).claimed
    guest = _guest_start(account)  # the page quoted 52.00
    assert guest.amount == 5200

    # The exact step: payment_confirm is about to take the account lock and confirm. At that moment autopay's charge
    # of the same bill runs to success on its own connection (a worker) and commits.
    lock_account = online.account_lock
    autopay_results, errors = [], []

    def autopay_worker():
        try:
            autopay_results.append(autopay_charge(charge_id=charge_id))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def autopay_wins_then_lock(account_id, **kwargs):
        if not autopay_results and not errors:
            worker = threading.Thread(target=autopay_worker)
            worker.start()
            worker.join(60)
        return lock_account(account_id, **kwargs)

    monkeypatch.setattr(online, "account_lock", autopay_wins_then_lock)
    outcome = payment_confirm(
        account_id=account.pk, payment_intent_id=guest.gateway_payment_id, payment_method_id="pm_card_visa"
    )
    assert errors == [] and autopay_results == [AutopayCharge.Status.SUCCEEDED]

    _assert_canceled_and_nothing_charged(guest, outcome, localstripe)
    succeeded = intents(localstripe, "succeeded")
    autopay_payment = Payment.objects.get(channel="autopay")
    assert [(i["id"], i["amount"]) for i in succeeded] == [(autopay_payment.gateway_payment_id, 5200)]
    assert not Refund.objects.exists()
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID and bill.amount_paid == 5200


def test_a_counter_payment_between_quote_and_confirm_cancels_the_intent(stripe_settings, localstripe, account):
    make_bill(account, amounts=(5200,))
    guest = _guest_start(account)
    payment_record_offline(account=account, amount=2000, method="cash")  # 32.00 left, less than the 52.00 quoted

    outcome = payment_confirm(
        account_id=account.pk, payment_intent_id=guest.gateway_payment_id, payment_method_id="pm_card_visa"
    )
    _assert_canceled_and_nothing_charged(guest, outcome, localstripe)
    assert intents(localstripe, "succeeded") == []

    # A second press on the stale page confirms nothing either; a fresh start quotes what is owed now.
    again = payment_confirm(
        account_id=account.pk, payment_intent_id=guest.gateway_payment_id, payment_method_id="pm_card_visa"
    )
    assert again.status == "failed" and intents(localstripe, "succeeded") == []
    fresh = _guest_start(account)
    assert fresh.pk != guest.pk and fresh.amount == 3200


def test_a_balance_that_went_up_is_charged_as_quoted(stripe_settings, localstripe, account):
    make_bill(account, amounts=(5200,))
    guest = _guest_start(account)
    make_bill(account, amounts=(1000,))  # a new bill came in while the page was open

    outcome = payment_confirm(
        account_id=account.pk, payment_intent_id=guest.gateway_payment_id, payment_method_id="pm_card_visa"
    )
    assert outcome.status == "succeeded"
    assert [i["amount"] for i in intents(localstripe, "succeeded")] == [5200]
    assert not Refund.objects.exists()


def test_the_saved_card_path_is_rechecked_too_and_the_page_is_told(
    stripe_settings, localstripe, client, account, django_user_model
):
    from accounts.models import AccountLink
    from accounts.services import account_link_grant

    user = django_user_model.objects.create_user(email="dana@example.com", password="pw-Dana-12345")
    account_link_grant(user=user, account=account, via=AccountLink.Via.LOOKUP)
    client.force_login(user)
    grant(client, account)
    make_bill(account, amounts=(5200,))
    card = save_card(user)
    status, started = start(client)
    assert status == 200 and started["total"] == 5200
    payment_record_offline(account=account, amount=5200, method="cash")  # paid at the counter meanwhile

    response = client.post(
        reverse("billing:pay_confirm"), {"payment_intent": started["paymentIntent"], "saved_card": card.pk}
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "balance_changed" and "nothing was charged" in answer["message"]
    payment = Payment.objects.get(channel="portal")
    assert payment.status == Payment.Status.CANCELED
    assert [i["status"] for i in stripe_support.payment_intents(localstripe)] == ["canceled"]
