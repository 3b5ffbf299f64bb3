"""billing.bulk.WriteBatch: independent writes sent together (one statement on PostgreSQL, one each elsewhere) must
behave as the separate statements did: every row written, ids back in order, and all or nothing when one part breaks
a constraint (the unique idempotency keys are what make a second charge impossible)."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from billing.bulk import WriteBatch
from billing.models import BillingEvent, Payment, PaymentAttempt


def _payment(account, key="batch-key"):
    return Payment.objects.create(
        biller=account.biller, account=account, confirmation_number=f"BP-{key[-10:].upper()}", channel="autopay",
        method="card", status="pending", currency=account.biller.currency, amount=4200, idempotency_key=key,
    )  # fmt: skip


def _attempt(payment, kind, key):
    return PaymentAttempt(payment=payment, kind=kind, amount=payment.amount, currency=payment.currency,
                          outcome="pending", idempotency_key=key)  # fmt: skip


@pytest.mark.django_db
def test_a_batch_writes_every_row_and_gives_the_ids_back_in_order(account):
    payment = _payment(account)
    rows = [_attempt(payment, "create", "k-create"), _attempt(payment, "confirm", "k-confirm")]
    event = BillingEvent(kind=BillingEvent.Kind.PAYMENT_RECORDED, payment=payment, account=account, to_status="pending")
    payment.gateway_payment_id = "pi_batch"
    writes = WriteBatch()
    writes.insert(rows, ids=True)
    writes.insert([event])
    writes.update([payment], ["gateway_payment_id", "updated_at"])
    with CaptureQueriesContext(connection) as seen:
        writes.run()
    assert len(seen.captured_queries) == (1 if connection.vendor == "postgresql" else 3)
    assert [PaymentAttempt.objects.get(pk=row.pk).idempotency_key for row in rows] == ["k-create", "k-confirm"]
    assert BillingEvent.objects.filter(payment=payment, kind=BillingEvent.Kind.PAYMENT_RECORDED).count() == 1
    assert Payment.objects.get(pk=payment.pk).gateway_payment_id == "pi_batch"
    assert not writes  # run empties it: running again writes nothing
    with CaptureQueriesContext(connection) as seen:
        writes.run()
    assert seen.captured_queries == []


@pytest.mark.django_db
def test_a_batch_is_all_or_nothing_when_a_part_breaks_a_unique_key(account):
    payment = _payment(account)
    PaymentAttempt.objects.create(payment=payment, kind="create", amount=4200, currency=payment.currency,
                                  outcome="pending", idempotency_key="k-taken")  # fmt: skip
    payment.gateway_payment_id = "pi_never"
    writes = WriteBatch()
    writes.update([payment], ["gateway_payment_id", "updated_at"])
    writes.insert([BillingEvent(kind=BillingEvent.Kind.PAYMENT_RECORDED, payment=payment, account=account)])
    writes.insert([_attempt(payment, "create", "k-taken")], ids=True)  # a second row with a key already used
    with pytest.raises(IntegrityError), transaction.atomic():
        writes.run()
    assert Payment.objects.get(pk=payment.pk).gateway_payment_id is None
    assert not BillingEvent.objects.filter(payment=payment).exists()
    assert PaymentAttempt.objects.filter(idempotency_key="k-taken").count() == 1


@pytest.mark.django_db
def test_writes_of_one_model_queued_by_many_callers_go_as_one_part_each_row_once(account, biller):
    """A batch of many small steps (a batch of autopay charges) queues a few rows per step: they join one part per
    model and kind, in order, so the statement does not grow a part per step; an instance queued twice is written
    once, with what it holds when the batch runs."""
    from tests.factories import CustomerAccountFactory

    payments = [_payment(account if i == 0 else CustomerAccountFactory(biller=biller), f"merge-{i}") for i in range(3)]
    writes = WriteBatch()
    for i, payment in enumerate(payments):
        payment.gateway_payment_id = f"pi_merge_{i}"
        writes.update([payment], ["gateway_payment_id", "updated_at"])
        writes.insert([_attempt(payment, "create", f"k-merge-{i}")], ids=True)
        writes.insert([BillingEvent(kind=BillingEvent.Kind.PAYMENT_RECORDED, payment=payment, account=payment.account)])
    writes.update([payments[0]], ["gateway_payment_id", "updated_at"])  # again: the same instance
    payments[0].gateway_payment_id = "pi_merge_last"  # what it holds when the batch runs is what is written
    with CaptureQueriesContext(connection) as seen:
        writes.run()
    # Three parts (the payments' UPDATE, the attempts' INSERT, the events' INSERT): one statement on PostgreSQL, three
    # elsewhere, as for one step.
    assert len(seen.captured_queries) == (1 if connection.vendor == "postgresql" else 3)
    if connection.vendor == "postgresql":
        assert seen.captured_queries[0]["sql"].count(" AS (") == 3  # w0, w1, w2
    assert [Payment.objects.get(pk=p.pk).gateway_payment_id for p in payments] == [
        "pi_merge_last", "pi_merge_1", "pi_merge_2"
    ]
    attempts = PaymentAttempt.objects.filter(idempotency_key__startswith="k-merge-").order_by("pk")
    assert [(a.pk, a.idempotency_key) for a in attempts] == [(a.pk, f"k-merge-{i}") for i, a in enumerate(attempts)]
    assert BillingEvent.objects.filter(payment__in=payments, kind=BillingEvent.Kind.PAYMENT_RECORDED).count() == 3


@pytest.mark.django_db
def test_two_instances_of_one_row_in_one_update_are_refused(account):
    payment = _payment(account)
    writes = WriteBatch()
    writes.update([payment], ["gateway_payment_id", "updated_at"])
    with pytest.raises(ValueError, match="two instances"):
        writes.update([Payment.objects.get(pk=payment.pk)], ["gateway_payment_id", "updated_at"])


@pytest.mark.django_db
def test_applying_payments_with_their_writes_left_queued_needs_the_one_bill_paid_block(account):
    """payments_apply(run=False) leaves the rows on the caller's writes and announces bill_paid later: only inside
    bills_paid_announced_once, which sends bill_paid once, after the caller has run the writes."""
    from billing.models import Bill
    from billing.payments.allocations import bills_paid_announced_once, payable_bills_lock, payments_apply
    from billing.signals import bill_paid
    from tests.factories import make_bill

    bill = make_bill(account, amounts=(4200,), due_in_days=0)
    payment = _payment(account, "apply-later")
    with pytest.raises(RuntimeError), transaction.atomic():
        payments_apply(portions=[(payment, 4200)], bills=payable_bills_lock(account_id=account.pk),
                       writes=WriteBatch(), run=False)  # fmt: skip

    announced = []

    def receiver(sender, *, bills, **kwargs):
        announced.append([(b.pk, Bill.objects.get(pk=b.pk).status) for b in bills])

    bill_paid.connect(receiver)
    try:
        with transaction.atomic(), bills_paid_announced_once():
            writes = WriteBatch()
            payments_apply(portions=[(payment, 4200)], bills=payable_bills_lock(account_id=account.pk),
                           writes=writes, run=False)  # fmt: skip
            assert Bill.objects.get(pk=bill.pk).amount_paid == 0 and announced == []  # queued, not yet sent
            writes.run()
    finally:
        bill_paid.disconnect(receiver)
    assert announced == [[(bill.pk, Bill.Status.PAID)]]  # once, after the writes: the receiver reads the bill paid
