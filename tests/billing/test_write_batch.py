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
