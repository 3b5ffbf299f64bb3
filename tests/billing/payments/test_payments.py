"""Online payments: the quote (server-computed amounts), and the exactly-once start and result recording."""

import pytest

from billing.payments.attempts import our_key
from billing.errors import ApplicationError
from billing.payments.online import payment_quote
from tests.factories import make_bill


@pytest.fixture
def two_bills(account):
    older = make_bill(account, amounts=(3000,), due_in_days=5)
    newer = make_bill(account, amounts=(7000,), due_in_days=35)
    return older, newer


class TestQuote:
    def test_full_balance_oldest_first(self, account, two_bills):
        quote = payment_quote(account=account)
        assert (quote.owed, quote.amount, quote.fee, quote.tip, quote.total) == (10000, 10000, 0, 0, 10000)
        assert quote.currency == "USD"
        assert [b.pk for b in quote.bills] == [two_bills[0].pk, two_bills[1].pk]

    def test_fee_fixed_plus_basis_points(self, account, two_bills):
        biller = account.biller
        biller.convenience_fee_fixed = 30
        biller.convenience_fee_basis_points = 250  # 2.5 %
        biller.save()
        quote = payment_quote(account=account, amount=4321)
        # 2.5 % of 43.21 = 1.08025 → 108 cents
        assert (quote.amount, quote.fee, quote.total) == (4321, 138, 4459)

    def test_partial_amount_bounds(self, account, two_bills):
        biller = account.biller
        biller.minimum_payment = 500
        biller.maximum_payment = 8000
        biller.save()
        assert payment_quote(account=account, amount=500).amount == 500
        assert payment_quote(account=account, amount=8000).amount == 8000
        with pytest.raises(ApplicationError, match="smallest payment"):
            payment_quote(account=account, amount=499)
        with pytest.raises(ApplicationError, match="largest payment"):
            payment_quote(account=account, amount=8001)
        with pytest.raises(ApplicationError, match="largest payment"):
            payment_quote(account=account)  # the full 100.00 is over the online maximum
        with pytest.raises(ApplicationError, match="more than"):
            payment_quote(account=account, amount=10001)

    def test_balance_below_minimum_only_in_full(self, account):
        make_bill(account, amounts=(60,))
        assert payment_quote(account=account).amount == 60
        assert payment_quote(account=account, amount=60).total == 60
        with pytest.raises(ApplicationError, match="only be paid in full"):
            payment_quote(account=account, amount=50)

    def test_nothing_owed(self, account):
        make_bill(account, amounts=(5000,), issue=False)  # a draft is not payable
        with pytest.raises(ApplicationError, match="nothing to pay"):
            payment_quote(account=account)

    def test_non_integer_amount_refused(self, account, two_bills):
        with pytest.raises(ApplicationError):
            payment_quote(account=account, amount="5000")
        with pytest.raises(ApplicationError):
            payment_quote(account=account, amount=50.0)

    def test_tips(self, account, two_bills):
        biller = account.biller
        with pytest.raises(ApplicationError, match="Tips are not accepted"):
            payment_quote(account=account, tip_percent=15)
        assert payment_quote(account=account, tip_amount=0).tip == 0
        biller.tips_enabled = True
        biller.tip_presets = [15, 20, 25]
        biller.save()
        quote = payment_quote(account=account, amount=3333, tip_percent=15)
        assert (quote.tip, quote.total) == (500, 3833)  # 15 % of 33.33 = 4.9995 → 5.00
        assert payment_quote(account=account, amount=3000, tip_amount=275).total == 3275
        with pytest.raises(ApplicationError, match="offered tip percentages"):
            payment_quote(account=account, tip_percent=17)
        with pytest.raises(ApplicationError, match="negative"):
            payment_quote(account=account, tip_amount=-1)
        with pytest.raises(ApplicationError, match="not both"):
            payment_quote(account=account, tip_percent=15, tip_amount=100)


# --------------------------------------------------------------------------------------------------------------------
# Start, result, janitor: against localstripe

import datetime as dt  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
import urllib.request  # noqa: E402

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from billing.payments.core import confirmation_number_new  # noqa: E402
from billing.payments.offline import payment_record_offline
from billing.payments.gateway import PaymentDeclined, get_gateway  # noqa: E402
from billing.models import Bill, BillingEvent, Payment, PaymentAllocation, PaymentAttempt, WebhookEvent  # noqa: E402
from billing.payments.core import payment_record_result  # noqa: E402
from billing.payments.online import payment_start
from billing.payments.reconcile import payments_reconcile
from tests import stripe_support  # noqa: E402
from tests.factories import CustomerAccountFactory  # noqa: E402
from tests.notice_sending import celery_eager, receipt_emails, refund_emails  # noqa: E402, F401


def confirm(intent_id: str, payment_method: str = "pm_card_visa"):
    """What the payer's browser does with the client secret, done server-side against localstripe."""
    return get_gateway().confirm_payment_intent(
        intent_id, idempotency_key=f"test-{intent_id}-{payment_method}", payment_method=payment_method
    )


def start(account, **kwargs):
    kwargs.setdefault("payer_email", "payer@example.com")
    kwargs.setdefault("channel", Payment.Channel.GUEST_WEB)
    return payment_start(account=account, **kwargs)


def intents(localstripe):
    return stripe_support.payment_intents(localstripe)


def run_in_threads(target, count):
    """Run target(i) in `count` real threads released together; each closes its own DB connection."""
    barrier = threading.Barrier(count)
    results, errors = [None] * count, []

    def worker(i):
        try:
            barrier.wait(timeout=10)
            results[i] = target(i)
        except Exception as exc:  # collected and asserted on by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


class TestStart:
    def test_creates_one_payment_and_intent_for_the_quote(self, stripe_settings, localstripe, account):
        bill = make_bill(account, amounts=(5000,))
        account.biller.convenience_fee_fixed = 150
        account.biller.save()
        payment, secret = start(account, save_card_requested=True)
        assert secret.startswith(payment.gateway_payment_id)
        assert (payment.status, payment.amount, payment.fee_amount, payment.total_charged) == ("pending", 5000, 150, 5150)
        assert payment.idempotency_key == our_key("payment", payment.pk)
        assert payment.save_card_requested and payment.payer_email == "payer@example.com"
        [intent] = intents(localstripe)
        assert (intent["id"], intent["amount"], intent["currency"]) == (payment.gateway_payment_id, 5150, "usd")
        attempt = payment.attempts.get()
        assert (attempt.kind, attempt.outcome, attempt.gateway_reference) == ("create", "pending", intent["id"])
        bill.refresh_from_db()
        assert bill.amount_paid == 0  # nothing is applied before the gateway says so

    def test_second_start_reuses_and_updates_the_amount(self, stripe_settings, localstripe, account):
        make_bill(account, amounts=(5000,))
        first, secret = start(account, amount=2000)
        again, secret_again = start(account, amount=3000)
        assert again.pk == first.pk and secret_again == secret
        assert again.amount == 3000
        [intent] = intents(localstripe)
        assert int(intent["amount"]) == 3000  # localstripe keeps an updated amount as the string it was sent
        assert list(again.attempts.values_list("kind", flat=True)) == ["create", "retrieve", "update"]

    def test_quote_errors_write_nothing(self, stripe_settings, localstripe, account):
        make_bill(account, amounts=(5000,))
        with pytest.raises(ApplicationError, match="more than"):
            start(account, amount=6000)
        assert not Payment.objects.exists() and intents(localstripe) == []

    def test_gateway_down_charges_nothing_and_the_next_start_resumes(self, stripe_settings, localstripe, account):
        make_bill(account, amounts=(5000,))
        good_base = stripe_settings.STRIPE_API_BASE
        stripe_settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens there
        with pytest.raises(ApplicationError, match="unavailable.*Nothing was charged"):
            start(account)
        payment = Payment.objects.get()
        assert payment.status == "pending" and payment.gateway_payment_id is None
        assert payment.attempts.get().outcome == PaymentAttempt.Outcome.ERROR
        stripe_settings.STRIPE_API_BASE = good_base
        resumed, _ = start(account)
        assert resumed.pk == payment.pk and len(intents(localstripe)) == 1

    def test_online_channels_only(self, stripe_settings, account):
        make_bill(account)
        with pytest.raises(ApplicationError):
            start(account, channel=Payment.Channel.STAFF_OFFLINE)

    def test_constraint_backs_one_in_flight_payment(self, account):
        from django.db import IntegrityError, transaction

        def row(status):
            return Payment(
                biller=account.biller, account=account, confirmation_number=confirmation_number_new(),
                channel=Payment.Channel.PORTAL, method=Payment.Method.CARD, status=status, currency="USD", amount=100,
            )

        row("pending").save()
        row("failed").save()  # finished payments do not count
        with pytest.raises(IntegrityError), transaction.atomic():
            row("requires_action").save()


class TestRecordResult:
    def test_success_applies_once_and_repeats_are_no_ops(self, stripe_settings, localstripe, account):
        older = make_bill(account, amounts=(3000,), due_in_days=3)
        newer = make_bill(account, amounts=(4000,), due_in_days=30)
        payment, _ = start(account, amount=5000)
        confirm(payment.gateway_payment_id)
        for _i in range(3):
            payment = payment_record_result(payment_intent_id=payment.gateway_payment_id, source="return")
        assert payment.status == "succeeded" and payment.received_at
        assert payment.payment_method_summary == "Visa •••• 4242"
        older.refresh_from_db()
        newer.refresh_from_db()
        assert (older.status, older.amount_paid) == ("paid", 3000)
        assert (newer.status, newer.amount_paid) == ("open", 2000)
        assert PaymentAllocation.objects.filter(payment=payment).count() == 2
        assert payment.attempts.filter(kind="retrieve").count() == 1  # later calls stop before the gateway

    def test_unknown_intent_is_ignored(self, stripe_settings, db):
        assert payment_record_result(payment_intent_id="pi_nobody", source="webhook") is None

    def test_tampered_amount_is_not_applied(self, stripe_settings, localstripe, account):
        bill = make_bill(account, amounts=(5000,))
        payment, _ = start(account)
        # Someone changes the amount on the gateway side, behind our back.
        request = urllib.request.Request(
            f"{localstripe}/v1/payment_intents/{payment.gateway_payment_id}",
            data=b"amount=100",
            headers={"Authorization": f"Bearer {stripe_support.SECRET_KEY}"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=5).read()
        confirm(payment.gateway_payment_id)
        payment = payment_record_result(payment_intent_id=payment.gateway_payment_id, source="return")
        payment = payment_record_result(payment_intent_id=payment.gateway_payment_id, source="webhook")
        assert payment.status == "failed"
        bill.refresh_from_db()
        assert (bill.status, bill.amount_paid) == ("open", 0)
        assert not payment.allocations.exists()
        event = payment.events.get(to_status="failed")
        assert "amount mismatch" in event.message

    def test_decline_then_retry_succeeds_on_the_same_payment(self, stripe_settings, localstripe, account):
        bill = make_bill(account, amounts=(5000,))
        payment, _ = start(account)
        declined_intent = payment.gateway_payment_id
        with pytest.raises(PaymentDeclined):
            confirm(declined_intent, "pm_card_chargeCustomerFail")
        payment = payment_record_result(payment_intent_id=declined_intent, source="return")
        assert payment.status == "failed"
        declined = payment.attempts.get(outcome=PaymentAttempt.Outcome.DECLINED)
        assert declined.decline_code and declined.gateway_reference == declined_intent

        retried, _ = start(account)
        assert retried.pk == payment.pk and retried.status == "pending"
        assert retried.confirmation_number == payment.confirmation_number
        confirm(retried.gateway_payment_id)
        # The old intent's late webhook changes nothing, the new one's result is recorded.
        assert payment_record_result(payment_intent_id=declined_intent, source="webhook") is None
        retried = payment_record_result(payment_intent_id=retried.gateway_payment_id, source="webhook")
        assert retried.status == "succeeded"
        bill.refresh_from_db()
        assert bill.status == "paid"
        by_id = {i["id"]: i["status"] for i in intents(localstripe)}
        assert by_id == {declined_intent: "canceled", retried.gateway_payment_id: "succeeded"}

    @pytest.mark.usefixtures("celery_eager")
    def test_bills_paid_meanwhile_excess_is_refunded_never_overpaid(
        self, stripe_settings, localstripe, account, django_capture_on_commit_callbacks, mailoutbox
    ):
        first = make_bill(account, amounts=(3000,), due_in_days=3)
        second = make_bill(account, amounts=(4000,), due_in_days=30)
        payment, _ = start(account)  # 70.00
        payment_record_offline(account=account, amount=3000, method="cash")  # pays the first bill
        confirm(payment.gateway_payment_id)
        with django_capture_on_commit_callbacks(execute=True):
            payment = payment_record_result(payment_intent_id=payment.gateway_payment_id, source="webhook")
        assert payment.status == "succeeded" and payment.amount_refunded == 3000
        first.refresh_from_db()
        second.refresh_from_db()
        assert (first.amount_paid, second.amount_paid, second.status) == (3000, 4000, "paid")
        refund = payment.refunds.get()
        assert (refund.status, refund.amount) == ("succeeded", 3000)
        assert refund.idempotency_key == our_key("refund", refund.pk)
        # The refund notice, beside the receipt e-mail every succeeded payment gets.
        notices = refund_emails(mailoutbox)
        assert len(notices) == 1 and notices[0].to == ["payer@example.com"]
        assert len(receipt_emails(mailoutbox)) == 1 and len(mailoutbox) == 2

    def test_start_after_an_unrecorded_success_records_it(self, stripe_settings, localstripe, account):
        make_bill(account, amounts=(5000,))
        payment, _ = start(account)
        confirm(payment.gateway_payment_id)  # the webhook has not arrived yet
        with pytest.raises(ApplicationError, match="just gone through"):
            start(account)
        payment.refresh_from_db()
        assert payment.status == "succeeded" and len(intents(localstripe)) == 1


class TestReconcile:
    def test_janitor_records_a_stuck_success_and_cancels_the_abandoned(self, stripe_settings, localstripe, account):
        bill = make_bill(account, amounts=(5000,))
        stuck, _ = start(account)
        confirm(stuck.gateway_payment_id)  # paid, but the webhook was lost
        other = CustomerAccountFactory(biller=account.biller)
        make_bill(other, amounts=(2000,))
        abandoned, _ = start(other)
        third = CustomerAccountFactory(biller=account.biller)
        make_bill(third, amounts=(2000,))
        fresh, _ = start(third)
        now = timezone.now()
        Payment.objects.filter(pk=stuck.pk).update(updated_at=now - dt.timedelta(minutes=20))
        Payment.objects.filter(pk=abandoned.pk).update(updated_at=now - dt.timedelta(hours=25))

        counts = payments_reconcile(older_than_minutes=15)

        assert counts["checked"] == 2 and counts["canceled"] == 1
        stuck.refresh_from_db()
        abandoned.refresh_from_db()
        fresh.refresh_from_db()
        bill.refresh_from_db()
        assert (stuck.status, bill.status) == ("succeeded", "paid")
        assert abandoned.status == "canceled" and fresh.status == "pending"
        by_id = {i["id"]: i["status"] for i in intents(localstripe)}
        assert by_id[abandoned.gateway_payment_id] == "canceled"
        assert payments_reconcile(older_than_minutes=15)["checked"] == 0

    def test_task_calls_the_service(self, stripe_settings, account, monkeypatch):
        from billing.payments import tasks

        calls = []
        monkeypatch.setattr(tasks, "payments_reconcile", lambda **kw: calls.append(kw))
        tasks.payments_reconcile_task.apply()
        assert calls == [{}]


# --------------------------------------------------------------------------------------------------------------------
# Real concurrency: PostgreSQL, real threads


@pytest.mark.postgres
def test_twenty_concurrent_starts_then_concurrent_results_charge_and_apply_once(
    require_postgres, transactional_db, stripe_settings, localstripe, webhook_receiver, account
):
    bill = make_bill(account, amounts=(5000,))

    results, errors = run_in_threads(lambda i: start(account, payer_email=f"p{i}@example.com"), 20)

    assert errors == []
    assert len({payment.pk for payment, _ in results}) == 1
    assert len({secret for _, secret in results}) == 1
    assert Payment.objects.count() == 1
    assert len(intents(localstripe)) == 1  # exactly one PaymentIntent at the gateway
    payment = Payment.objects.get()

    confirm(payment.gateway_payment_id)
    delivery = webhook_receiver.wait_for("payment_intent.succeeded", object_id=payment.gateway_payment_id)
    url = reverse("billing:stripe_webhook")

    def record_or_post(i):
        if i < 3:
            return payment_record_result(payment_intent_id=payment.gateway_payment_id, source=f"return {i}")
        response = Client().post(
            url, data=delivery.body, content_type="application/json", HTTP_STRIPE_SIGNATURE=delivery.signature
        )
        return response.status_code

    results, errors = run_in_threads(record_or_post, 6)

    assert errors == []
    assert results[3:] == [200, 200, 200]
    payment.refresh_from_db()
    bill.refresh_from_db()
    assert payment.status == "succeeded"
    assert (bill.status, bill.amount_paid) == ("paid", 5000)
    assert PaymentAllocation.objects.filter(payment=payment).count() == 1
    assert BillingEvent.objects.filter(payment=payment, kind="payment_applied").count() == 1
    assert BillingEvent.objects.filter(payment=payment, to_status="succeeded").count() == 1
    stored = WebhookEvent.objects.get(type="payment_intent.succeeded")
    assert stored.processed_at is not None
    assert len(intents(localstripe)) == 1
    assert Bill.objects.get(pk=bill.pk).amount_paid == 5000
    assert json.loads(delivery.body)["data"]["object"]["id"] == payment.gateway_payment_id
