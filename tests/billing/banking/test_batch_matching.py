"""Matching a statement in chunks (docs/bank-transfers.md, "Matching, in chunks"): the payment core's batch entry
applies each bank entry once, never more than a bill owes, holds the rest as credit and loses no payment; a chunk
costs the same queries for 10 lines as for 100; an interrupted run resumes with the lines still new; two runs at once
apply each line once; the receipts of a batch cost the same queries however many; the line's history is kept as
events, and staff can take back a "not ours"."""

import threading
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.banking import statements
from billing.banking.statements import (
    statement_chunk_match,
    statement_line_dismiss,
    statement_line_reopen,
    statement_match,
    statement_store,
)
from billing.errors import ApplicationError
from billing.models import (
    AccountCreditEntry,
    BankStatement,
    Bill,
    BillingEvent,
    CustomerAccount,
    Payment,
    PaymentAllocation,
    StatementLine,
)
from billing.payments.transfers import BankTransfer, bank_entry_key, payment_record_bank_transfers
from notifications.models import NoticeKind, NoticePreference, Notification
from notifications.receipts import receipts_send
from tests.concurrency import at_once
from tests.factories import BillerFactory, CustomerAccountFactory, make_bill


def _key(biller, entry):
    return bank_entry_key(kind="transfer", biller_id=biller.pk, entry_key=entry)


def _ledger(account):
    return sum(e.signed_amount for e in AccountCreditEntry.objects.filter(account=account))


def _money_holds(accounts):
    """What every test here checks after the fact: no bill overpaid, each payment's money all on bills or held as
    credit, and each account's credit equal to its ledger."""
    for bill in Bill.objects.all():
        assert 0 <= bill.amount_paid <= bill.total
        assert (bill.status == Bill.Status.PAID) == (bill.amount_paid == bill.total)
    for payment in Payment.objects.filter(channel=Payment.Channel.BANK_TRANSFER):
        on_bills = sum(a.amount for a in PaymentAllocation.objects.filter(payment=payment))
        held = sum(e.amount for e in AccountCreditEntry.objects.filter(source_payment=payment, kind="received"))
        assert on_bills + held == payment.amount
    for account in accounts:
        account.refresh_from_db()
        assert account.credit_balance == _ledger(account)


@pytest.mark.django_db
def test_a_batch_applies_each_entry_once_oldest_bill_first_never_more_than_owed():
    biller = BillerFactory(currency="USD")
    a, b, c = (CustomerAccountFactory(biller=biller) for _ in range(3))
    a_later = make_bill(a, amounts=(3000,), due_in_days=20)
    a_older = make_bill(a, amounts=(5000,), due_in_days=5)
    b_bill = make_bill(b, amounts=(2000,))
    batch = [
        BankTransfer(account_id=a.pk, amount=6000, currency="USD", key=_key(biller, "E1")),
        BankTransfer(account_id=a.pk, amount=4000, currency="USD", key=_key(biller, "E2")),  # after E1: 2000 owed
        BankTransfer(account_id=b.pk, amount=1500, currency="USD", key=_key(biller, "E3")),  # partial
        BankTransfer(account_id=c.pk, amount=700, currency="USD", key=_key(biller, "E4")),  # nothing owed: credit
        BankTransfer(account_id=a.pk, amount=6000, currency="USD", key=_key(biller, "E1")),  # the bank repeated E1
    ]
    results = payment_record_bank_transfers(transfers=batch)

    assert [r.created for r in results] == [True, True, True, True, False]
    assert results[4].payment == results[0].payment
    assert [(r.applied, r.credited) for r in results[:4]] == [(6000, 0), (2000, 2000), (1500, 0), (0, 700)]
    assert Payment.objects.filter(channel=Payment.Channel.BANK_TRANSFER).count() == 4
    for bill in (a_older, a_later, b_bill):
        bill.refresh_from_db()
    assert (a_older.status, a_older.amount_paid) == (Bill.Status.PAID, 5000)  # oldest first
    assert (a_later.status, a_later.amount_paid) == (Bill.Status.PAID, 3000)  # never more than it owes
    assert (b_bill.status, b_bill.balance_due) == (Bill.Status.OPEN, 500)
    _money_holds([a, b, c])
    assert (a.credit_balance, c.credit_balance) == (2000, 700)

    # The same batch again (a second import, a retried chunk): nothing new, the first payments given back.
    again = payment_record_bank_transfers(transfers=batch)
    assert all(not r.created for r in again)
    assert [r.payment for r in again] == [r.payment for r in results]
    assert [(r.applied, r.credited) for r in again[:4]] == [(6000, 0), (2000, 2000), (1500, 0), (0, 700)]
    assert Payment.objects.filter(channel=Payment.Channel.BANK_TRANSFER).count() == 4
    assert PaymentAllocation.objects.count() == 4
    _money_holds([a, b, c])


@pytest.mark.django_db
def test_a_batch_is_refused_whole_when_one_transfer_is_in_another_currency():
    biller = BillerFactory(currency="USD")
    a, b = CustomerAccountFactory(biller=biller), CustomerAccountFactory(biller=biller)
    make_bill(a, amounts=(5000,))
    with pytest.raises(ApplicationError):
        payment_record_bank_transfers(transfers=[
            BankTransfer(account_id=a.pk, amount=5000, currency="USD", key=_key(biller, "E1")),
            BankTransfer(account_id=b.pk, amount=100, currency="EUR", key=_key(biller, "E2")),
        ])  # fmt: skip
    assert not Payment.objects.exists()
    assert Bill.objects.get(account=a).amount_paid == 0


def _statement(biller, n: int, *, tag: str) -> BankStatement:
    """A statement of n lines of every kind a chunk meets: exact, partial and over payments, two transfers to one
    account, a reference failing its check digit, no reference, money out."""
    rows = ["entry_id,booking_date,amount,currency,payer_name,payer_account,remittance,end_to_end_id,kind"]
    accounts = []
    for i in range(n):
        kind = i % 7
        if kind in (0, 1, 2, 3):
            account = CustomerAccountFactory(biller=biller)
            make_bill(account, amounts=(10000,))
            accounts.append(account)
            amount = ("100.00", "40.00", "130.00", "60.00")[kind]
            if kind == 3:  # a second transfer to the account of the line before
                account = accounts[-2]
            remittance = f"Bill {account.bank_reference}"
        elif kind == 4:
            amount, remittance = "12.00", "Bill " + accounts[-1].bank_reference[:-1] + "X"  # not a reference
        elif kind == 5:
            amount, remittance = "12.00", "thanks"
        else:
            amount, remittance = "-4.90", "bank fee"
        rows.append(f"{tag}{i:06d},2026-11-02,{amount},USD,Payer {i},,{remittance},,")
    content = ("\n".join(rows) + "\n").encode()
    return statement_store(biller=biller, filename=f"{tag}.csv", content=content)


@pytest.mark.django_db
def test_a_chunk_costs_the_same_queries_for_10_lines_as_for_100(django_capture_on_commit_callbacks):
    biller = BillerFactory(currency="USD")
    counts, payments = {}, {}
    for n in (10, 100):
        statement = _statement(biller, n, tag=f"S{n}-")
        before = Payment.objects.count()
        with CaptureQueriesContext(connection) as queries:
            with django_capture_on_commit_callbacks(execute=True):  # the receipts after commit count too
                claimed, returns = statement_chunk_match(statement=statement, biller=biller, size=n)
        assert (len(claimed), returns) == (n, [])
        counts[n], payments[n] = len(queries.captured_queries), Payment.objects.count() - before
        assert not statement.lines.filter(status=StatementLine.Status.NEW).exists()
    assert payments[100] > 5 * payments[10] > 0
    # On both databases: the payments go in one statement a chunk (bulk.rows_create), not one per 37 rows on SQLite.
    assert counts[100] == counts[10], counts


@pytest.mark.django_db
def test_an_interrupted_run_resumes_with_the_lines_still_new(monkeypatch):
    biller = BillerFactory(currency="USD")
    statement = _statement(biller, 21, tag="R-")
    monkeypatch.setattr(statements, "CHUNK_SIZE", 7)
    real = statements.payment_record_bank_transfers
    calls = []

    def crash_on_the_second_chunk(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("worker killed")
        return real(**kwargs)

    monkeypatch.setattr(statements, "payment_record_bank_transfers", crash_on_the_second_chunk)
    with pytest.raises(RuntimeError):
        statement_match(statement=statement)
    statement.refresh_from_db()
    assert statement.processed_lines == 7  # the first chunk's progress was saved
    assert statement.lines.filter(status=StatementLine.Status.NEW).count() == 14
    first_chunk_payments = Payment.objects.count()
    assert first_chunk_payments == statement.lines.filter(status=StatementLine.Status.APPLIED).count() > 0

    monkeypatch.setattr(statements, "payment_record_bank_transfers", real)
    statement_match(statement=BankStatement.objects.get(pk=statement.pk))
    statement.refresh_from_db()
    assert statement.status == BankStatement.Status.SUCCEEDED
    assert not statement.lines.filter(status=StatementLine.Status.NEW).exists()
    applied = statement.lines.filter(status=StatementLine.Status.APPLIED)
    assert Payment.objects.count() == applied.count() == len({line.payment_id for line in applied})
    _money_holds(CustomerAccount.objects.all())


def test_two_runs_on_one_statement_at_once_apply_each_line_once(require_postgres, transactional_db, monkeypatch):
    biller = BillerFactory(currency="USD")
    statement = _statement(biller, 60, tag="T-")
    monkeypatch.setattr(statements, "CHUNK_SIZE", 10)
    errors = at_once(lambda: statement_match(statement=BankStatement.objects.get(pk=statement.pk)))
    assert not errors
    assert not statement.lines.filter(status=StatementLine.Status.NEW).exists()
    applied = statement.lines.filter(status=StatementLine.Status.APPLIED)
    assert Payment.objects.count() == applied.count() == len({line.payment_id for line in applied})
    assert BillingEvent.objects.filter(kind=BillingEvent.Kind.STATEMENT_LINE, from_status="new").count() == 60
    _money_holds(CustomerAccount.objects.all())


@pytest.mark.django_db
def test_the_receipts_of_a_batch_cost_the_same_queries_for_10_payments_as_for_100():
    biller = BillerFactory(currency="USD")
    counts = {}
    for n in (10, 100):
        accounts = [CustomerAccountFactory(biller=biller) for _ in range(n)]
        results = payment_record_bank_transfers(transfers=[
            BankTransfer(account_id=a.pk, amount=1000, currency="USD", key=_key(biller, f"N{n}-{a.pk}"))
            for a in accounts
        ])  # fmt: skip
        ids = [r.payment.pk for r in results]
        with CaptureQueriesContext(connection) as queries:
            assert receipts_send(payment_ids=ids) == n
        counts[n] = len(queries.captured_queries)
        received = Notification.objects.filter(payment_id__in=ids, kind=NoticeKind.PAYMENT_RECEIVED, channel="email")
        assert received.count() == n  # every payer, once
        assert receipts_send(payment_ids=ids) == 0  # raised once
        assert received.count() == n
    assert counts[100] == counts[10], counts


@pytest.mark.django_db
def test_a_batchs_receipts_reach_every_payer_with_an_address_and_read_no_one_else():
    biller = BillerFactory(currency="USD")
    mailed = CustomerAccountFactory(biller=biller)
    texted = CustomerAccountFactory(biller=biller, email="", phone="+1 555 0100 123")
    NoticePreference.objects.create(account=texted, kind="payment_received", channel="sms", enabled=True)
    typed = CustomerAccountFactory(biller=biller, email="")
    blank = CustomerAccountFactory(biller=biller, email="   ")
    nobody = [CustomerAccountFactory(biller=biller, email="") for _ in range(3)]
    results = payment_record_bank_transfers(transfers=[
        BankTransfer(account_id=a.pk, amount=1000, currency="USD", key=_key(biller, f"A{a.pk}"))
        for a in (mailed, texted, typed, blank, *nobody)
    ])  # fmt: skip
    by_account = {r.payment.account_id: r.payment.pk for r in results}
    Payment.objects.filter(pk=by_account[typed.pk]).update(payer_email="guest@example.com")
    assert receipts_send(payment_ids=list(by_account.values())) == 3
    told = set(Notification.objects.filter(kind=NoticeKind.PAYMENT_RECEIVED).values_list("account_id", "channel"))
    assert told == {(mailed.pk, "email"), (texted.pk, "sms"), (typed.pk, "email")}
    assert receipts_send(payment_ids=list(by_account.values())) == 0  # raised once

    # A batch with nobody to tell: one read, nothing written, nothing claimed.
    quiet = [by_account[a.pk] for a in nobody]
    with CaptureQueriesContext(connection) as queries:
        assert receipts_send(payment_ids=quiet) == 0
    assert len(queries.captured_queries) == 1
    assert not Payment.objects.filter(pk__in=[*quiet, by_account[blank.pk]], receipt_sent_at__isnull=False).exists()


@pytest.mark.django_db
def test_a_lines_history_is_kept_and_staff_can_take_back_not_ours(staff_user):
    biller = BillerFactory(currency="USD")
    statement = statement_match(statement=_statement(biller, 7, tag="H-"))
    line = statement.lines.get(remittance="thanks")
    assert line.status == StatementLine.Status.UNMATCHED
    with pytest.raises(ApplicationError):
        statement_line_reopen(line=line, actor=staff_user)  # only a not-ours line goes back
    statement_line_dismiss(line=line, actor=staff_user)
    reopened = statement_line_reopen(line=line, actor=staff_user)
    assert reopened.status == StatementLine.Status.UNMATCHED
    history = list(line.events.order_by("pk").values_list("kind", "from_status", "to_status", "actor"))
    assert history == [
        ("statement_line", "new", "unmatched", None),
        ("statement_line", "unmatched", "not_ours", staff_user.pk),
        ("statement_line", "not_ours", "unmatched", staff_user.pk),
    ]
    applied = statement.lines.filter(status=StatementLine.Status.APPLIED).first()
    event = applied.events.get()
    assert (event.to_status, event.payment_id, event.account_id) == ("applied", applied.payment_id, applied.account_id)


def _threaded_statement(monkeypatch, settings, *, connections: int, lines: int, tag: str):
    """A statement of `lines` lines to match in chunks of 7 on `connections` connections, and the list that records
    which thread matched each chunk (`_chunks_by_thread`)."""
    settings.STATEMENT_MATCH_CONNECTIONS = connections
    statement = _statement(BillerFactory(currency="USD"), lines, tag=tag)
    monkeypatch.setattr(statements, "CHUNK_SIZE", 7)
    return statement, _chunks_by_thread(monkeypatch)


def _chunks_by_thread(monkeypatch):
    """Which thread matched each chunk that claimed lines; a chunk waits a moment after its work so that the other
    connections get to claim theirs while it holds its lines (as a real chunk does while the database works)."""
    real, seen = statements.statement_chunk_match, []

    def recorded(**kwargs):
        claimed, returns = real(**kwargs)
        if claimed:
            seen.append(threading.get_ident())
            time.sleep(0.05)
        return claimed, returns

    monkeypatch.setattr(statements, "statement_chunk_match", recorded)
    return seen


def test_one_run_matches_its_chunks_on_several_connections_each_line_once(
    require_postgres, transactional_db, monkeypatch, settings
):
    statement, chunks = _threaded_statement(monkeypatch, settings, connections=3, lines=70, tag="C-")
    shown = []

    statement = statement_match(statement=statement, progress=shown.append)

    assert len(chunks) == 10 and len(set(chunks)) >= 2 and threading.get_ident() in chunks
    assert statement.status == BankStatement.Status.SUCCEEDED and statement.processed_lines == 70
    assert shown == sorted(shown) and shown[-1] <= 70  # the run's own progress, counting every connection's chunks
    assert not statement.lines.filter(status=StatementLine.Status.NEW).exists()
    applied = statement.lines.filter(status=StatementLine.Status.APPLIED)
    assert Payment.objects.count() == applied.count() == len({line.payment_id for line in applied})
    assert BillingEvent.objects.filter(kind=BillingEvent.Kind.STATEMENT_LINE, from_status="new").count() == 70
    _money_holds(CustomerAccount.objects.all())


def test_a_helper_connections_failure_is_raised_and_the_run_resumes(
    require_postgres, transactional_db, monkeypatch, settings
):
    statement, _chunks = _threaded_statement(monkeypatch, settings, connections=2, lines=42, tag="F-")
    real, main = statements.payment_record_bank_transfers, threading.get_ident()

    def helper_fails(**kwargs):
        if threading.get_ident() != main:
            raise RuntimeError("helper connection lost")
        return real(**kwargs)

    monkeypatch.setattr(statements, "payment_record_bank_transfers", helper_fails)
    with pytest.raises(RuntimeError, match="helper connection lost"):
        statement_match(statement=statement)
    left = statement.lines.filter(status=StatementLine.Status.NEW).count()
    assert left > 0  # the helper's chunk rolled back whole: its lines are new again
    applied = statement.lines.filter(status=StatementLine.Status.APPLIED)
    assert Payment.objects.count() == applied.count()

    monkeypatch.setattr(statements, "payment_record_bank_transfers", real)
    statement = statement_match(statement=BankStatement.objects.get(pk=statement.pk))
    assert statement.status == BankStatement.Status.SUCCEEDED
    assert not statement.lines.filter(status=StatementLine.Status.NEW).exists()
    applied = statement.lines.filter(status=StatementLine.Status.APPLIED)
    assert Payment.objects.count() == applied.count() == len({line.payment_id for line in applied})
    _money_holds(CustomerAccount.objects.all())


@pytest.mark.django_db
def test_inside_a_callers_transaction_one_connection_matches_everything(monkeypatch, settings):
    statement, chunks = _threaded_statement(monkeypatch, settings, connections=3, lines=21, tag="O-")
    statement_match(statement=statement)  # the test's transaction: other connections could not see its lines
    assert chunks == [threading.get_ident()] * 3
    assert not statement.lines.filter(status=StatementLine.Status.NEW).exists()
