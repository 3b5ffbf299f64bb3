"""billing.bulk, the statement matcher's writer (docs/performance.md): each row gets its own id, a key already recorded
is refused, awkward text and timestamps arrive as they were sent, a conflicting row is skipped (not written twice),
and `row_new` builds the same instance as the model's constructor. On PostgreSQL this goes through COPY, the sequence
and json_populate_recordset; on SQLite through INSERT … RETURNING and VALUES lists."""

import datetime as dt

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.bulk import row_new, rows_create, rows_insert, rows_read, rows_update
from billing.models import BankStatement, BillingEvent, CustomerAccount, Payment, StatementLine
from tests.factories import BillerFactory, CustomerAccountFactory

AWKWARD = ["plain", "it's \"quoted\"", "back\\slash", "tab\tand\nnewline", "ünïcödé €", "{braces}, [brackets]", ""]


def _payment(account, key: str) -> Payment:
    return row_new(
        Payment, biller_id=account.biller_id, account=account, confirmation_number=f"BP-{key}", amount=100,
        channel=Payment.Channel.BANK_TRANSFER, method=Payment.Method.BANK_TRANSFER, status=Payment.Status.SUCCEEDED,
        currency="USD", idempotency_key=f"bulk-{key}", received_at=timezone.now(),
    )  # fmt: skip


@pytest.mark.django_db
def test_rows_create_gives_each_row_its_own_id():
    accounts = [CustomerAccountFactory() for _ in range(3)]
    payments = rows_create([_payment(accounts[i % 3], f"K{i:04d}") for i in range(120)])
    assert len({p.pk for p in payments}) == 120 and all(p.pk for p in payments)
    stored = dict(Payment.objects.values_list("pk", "idempotency_key"))
    assert {p.pk: p.idempotency_key for p in payments} == stored
    assert all(p.account_id == accounts[i % 3].pk for i, p in enumerate(payments))
    # A later row made the ordinary way takes a fresh id (on PostgreSQL the ids came from the sequence).
    later = Payment.objects.create(
        biller_id=accounts[0].biller_id, account=accounts[0], confirmation_number="BP-LATER", amount=1,
        channel=Payment.Channel.BANK_TRANSFER, method=Payment.Method.BANK_TRANSFER, currency="USD",
    )  # fmt: skip
    assert later.pk not in stored


@pytest.mark.django_db
def test_rows_create_refuses_a_key_already_recorded():
    account = CustomerAccountFactory()
    rows_create([_payment(account, "ONCE")])
    with pytest.raises(IntegrityError), transaction.atomic():
        again = _payment(account, "ONCE")
        again.confirmation_number = "BP-OTHER"
        rows_create([_payment(account, "NEW"), again])
    assert list(Payment.objects.values_list("idempotency_key", flat=True)) == ["bulk-ONCE"]


@pytest.mark.django_db
def test_awkward_values_arrive_as_sent_and_a_conflicting_row_is_skipped():
    biller = BillerFactory()
    statement = BankStatement.objects.create(biller=biller, filename="x.csv", sha256="0" * 64, format="csv")
    booked = dt.date(2026, 11, 2)

    def line(i, text):
        return row_new(
            StatementLine, biller_id=biller.pk, statement_id=statement.pk, entry_key=f"E{i}", line_number=i,
            booking_date=booked, direction=StatementLine.Direction.CREDIT, amount=100 + i, currency="USD",
            remittance=text, counterparty_name=text[:200],
        )  # fmt: skip

    assert rows_insert([line(i, text) for i, text in enumerate(AWKWARD)], ignore_conflicts=True) == len(AWKWARD)
    assert rows_insert([line(0, "again"), line(99, "new")], ignore_conflicts=True) == 1  # E0 is there already
    lines = list(StatementLine.objects.filter(statement=statement).order_by("line_number"))
    assert [x.remittance for x in lines] == [*AWKWARD, "new"]
    assert all(x.booking_date == booked and x.status == StatementLine.Status.NEW for x in lines)

    decided = timezone.now().replace(microsecond=123456)
    for x, text in zip(lines, reversed(AWKWARD + ["last"])):
        x.status, x.note, x.decided_at, x.amount_applied = StatementLine.Status.UNMATCHED, text, decided, 2**40
    assert rows_update(lines, ["status", "note", "decided_at", "amount_applied", "updated_at"]) == len(lines)
    again = list(StatementLine.objects.filter(statement=statement).order_by("line_number"))
    assert [x.note for x in again] == list(reversed(AWKWARD + ["last"]))
    assert {(x.status, x.decided_at, x.amount_applied) for x in again} == {("unmatched", decided, 2**40)}


@pytest.mark.django_db
def test_row_new_builds_what_the_constructor_builds():
    account = CustomerAccountFactory()
    fields = dict(kind=BillingEvent.Kind.CREDIT, account=account, amount=5, currency="USD", message="m")
    made, built = BillingEvent(**fields), row_new(BillingEvent, **fields)
    assert {k: v for k, v in made.__dict__.items() if k != "_state"} == {
        k: v for k, v in built.__dict__.items() if k != "_state"
    }
    assert built.account is account and built._state.adding
    with pytest.raises(TypeError):
        row_new(BillingEvent, no_such_field=1)
    rows_insert([built])
    assert BillingEvent.objects.get(kind=BillingEvent.Kind.CREDIT).account_id == account.pk


@pytest.mark.django_db
def test_row_new_by_attname_builds_what_the_constructor_builds():
    account = CustomerAccountFactory()
    fields = dict(kind=BillingEvent.Kind.CREDIT, account_id=account.pk, amount=5, currency="USD", message="m")
    made, built = BillingEvent(**fields), row_new(BillingEvent, **fields)
    assert {k: v for k, v in made.__dict__.items() if k != "_state"} == {
        k: v for k, v in built.__dict__.items() if k != "_state"
    }
    assert built._state.adding and built.account == account


@pytest.mark.django_db
def test_rows_read_gives_what_the_queryset_gives():
    accounts = [CustomerAccountFactory(credit_balance=i) for i in range(3)]
    def state(obj):
        return {k: v for k, v in obj.__dict__.items() if k != "_state"}, obj._state.adding, obj._state.db

    every = CustomerAccount.objects.filter(pk__in=[a.pk for a in accounts]).order_by("-pk")
    assert [state(o) for o in rows_read(every)] == [state(o) for o in every]
    some = every.select_for_update()
    with transaction.atomic():
        read = rows_read(some, ["biller_id", "email", "credit_balance"])
        assert [state(o) for o in read] == [state(o) for o in every.only("biller_id", "email", "credit_balance")]
    assert [o.credit_balance for o in read] == [2, 1, 0]
    assert read[0].holder_name == accounts[2].holder_name  # a field not read is loaded on use, as with `only`
    assert rows_read(every.filter(pk=0)) == []
