"""The payment core's bank-transfer entry: a transfer applied oldest bill first, a partial one, an overpayment held
as account credit and put on the next issued bill, the same bank entry recorded once, a bank return reversing what
the transfer did (credit, bills, bills its credit paid), and staff paying held credit back."""

import pytest

from billing.errors import ApplicationError
from billing.models import AccountCreditEntry, Bill, Payment, PaymentAllocation, Refund
from billing.payments.credit import account_credit_refund
from billing.payments.transfers import bank_entry_key, payment_bank_transfer_return, payment_record_bank_transfer
from tests.factories import make_bill
from tests.notice_sending import celery_eager, receipt_emails  # noqa: F401

pytestmark = pytest.mark.django_db


def _transfer(account, amount, entry="E1", capture=None):
    key = bank_entry_key(kind="transfer", biller_id=account.biller_id, entry_key=entry)
    return payment_record_bank_transfer(
        account=account, amount=amount, currency="USD", key=key, reference="RF…", payer_name="Zoë Ångström"
    )


def _credit_ledger_sum(account):
    return sum(entry.signed_amount for entry in AccountCreditEntry.objects.filter(account=account))


def test_transfer_pays_oldest_bill_first_and_sends_the_receipt(
    account, celery_eager, mailoutbox, django_capture_on_commit_callbacks  # noqa: F811
):
    later = make_bill(account, amounts=(3000,), due_in_days=20)
    older = make_bill(account, amounts=(5000,), due_in_days=5)
    with django_capture_on_commit_callbacks(execute=True):
        result = _transfer(account, 6000)

    older.refresh_from_db()
    later.refresh_from_db()
    assert (older.status, older.amount_paid) == (Bill.Status.PAID, 5000)
    assert (later.status, later.amount_paid) == (Bill.Status.OPEN, 1000)
    payment = result.payment
    assert (payment.channel, payment.method, payment.status) == ("bank_transfer", "bank_transfer", "succeeded")
    assert (result.applied, result.credited) == (6000, 0)
    assert len(receipt_emails(mailoutbox)) == 1
    assert receipt_emails(mailoutbox)[0].to == [account.email]


def test_partial_transfer_leaves_the_balance_open(account):
    bill = make_bill(account, amounts=(5000,))
    result = _transfer(account, 2000)
    bill.refresh_from_db()
    assert (bill.status, bill.balance_due) == (Bill.Status.OPEN, 3000)
    assert result.credited == 0
    account.refresh_from_db()
    assert account.credit_balance == 0


def test_overpayment_is_held_as_credit_and_pays_the_next_issued_bill(account, django_capture_on_commit_callbacks):
    bill = make_bill(account, amounts=(5000,))
    result = _transfer(account, 8000)
    bill.refresh_from_db()
    account.refresh_from_db()
    assert (bill.status, bill.amount_paid) == (Bill.Status.PAID, 5000)  # never more than owed
    assert result.credited == 3000
    assert account.credit_balance == 3000 == _credit_ledger_sum(account)

    with django_capture_on_commit_callbacks(execute=True):
        next_bill = make_bill(account, amounts=(2000,))
    next_bill.refresh_from_db()
    account.refresh_from_db()
    assert (next_bill.status, next_bill.amount_paid) == (Bill.Status.PAID, 2000)
    assert account.credit_balance == 1000 == _credit_ledger_sum(account)
    credit_payment = Payment.objects.get(channel=Payment.Channel.ACCOUNT_CREDIT)
    assert credit_payment.amount == 2000
    applied = AccountCreditEntry.objects.get(kind=AccountCreditEntry.Kind.APPLIED)
    assert (applied.source_payment, applied.payment, applied.amount) == (result.payment, credit_payment, 2000)


def test_the_same_bank_entry_is_recorded_once(account):
    make_bill(account, amounts=(5000,))
    first = _transfer(account, 6000, entry="BANK-REF-1")
    second = _transfer(account, 6000, entry="BANK-REF-1")
    assert (first.created, second.created) == (True, False)
    assert second.payment == first.payment
    assert (second.applied, second.credited) == (5000, 1000)
    assert Payment.objects.count() == 1
    account.refresh_from_db()
    assert account.credit_balance == 1000


def test_a_return_takes_back_credit_bills_and_what_its_credit_paid(account, django_capture_on_commit_callbacks):
    first = make_bill(account, amounts=(5000,))
    transfer = _transfer(account, 8000).payment
    with django_capture_on_commit_callbacks(execute=True):
        second = make_bill(account, amounts=(2000,))
    key = bank_entry_key(kind="return", biller_id=account.biller_id, entry_key="RET-1")

    reversed_amount = payment_bank_transfer_return(payment=transfer, amount=8000, key=key, reason="AC04 closed")
    assert reversed_amount == 8000
    assert payment_bank_transfer_return(payment=transfer, amount=8000, key=key, reason="again") == 0  # once

    for bill in (first, second):
        bill.refresh_from_db()
        assert (bill.status, bill.amount_paid) == (Bill.Status.OPEN, 0)
    account.refresh_from_db()
    assert account.credit_balance == 0 == _credit_ledger_sum(account)
    transfer.refresh_from_db()
    assert transfer.amount_refunded == 8000
    assert set(Refund.objects.values_list("kind", flat=True)) == {Refund.Kind.BANK_RETURN}
    assert sum(a.amount - a.amount_reversed for a in PaymentAllocation.objects.all()) == 0


def test_staff_pay_held_credit_back(account, staff_user):
    transfer = _transfer(account, 4000).payment  # nothing owed: all of it is credit
    with pytest.raises(ApplicationError):
        account_credit_refund(account=account, amount=5000, reference="TRF-9", actor=staff_user)
    refunds = account_credit_refund(account=account, amount=2500, reference="TRF-9", actor=staff_user)
    account.refresh_from_db()
    assert account.credit_balance == 1500 == _credit_ledger_sum(account)
    assert [(r.payment, r.amount, r.kind, r.status) for r in refunds] == [
        (transfer, 2500, Refund.Kind.CREDIT_REFUND, Refund.Status.SUCCEEDED)
    ]


def test_a_transfer_in_another_currency_is_refused(account):
    key = bank_entry_key(kind="transfer", biller_id=account.biller_id, entry_key="E9")
    with pytest.raises(ApplicationError):
        payment_record_bank_transfer(account=account, amount=100, currency="EUR", key=key)
    assert not Payment.objects.exists()


def test_the_sweeper_applies_credit_the_after_commit_reaction_missed(account):
    from billing.payments.credit import credits_apply

    _transfer(account, 3000)  # nothing owed: all credit
    bill = make_bill(account, amounts=(2000,))  # issued, but the after-commit reaction never ran here
    assert credits_apply() == 1
    bill.refresh_from_db()
    account.refresh_from_db()
    assert (bill.status, account.credit_balance) == (Bill.Status.PAID, 1000)
    assert credits_apply() == 0  # nothing owed any more
