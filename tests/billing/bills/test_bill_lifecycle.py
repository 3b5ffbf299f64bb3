import pytest
from django.db import IntegrityError, transaction

from billing.bills.services import bill_issue, bill_status_move, bill_void
from billing.errors import ApplicationError
from billing.models import Bill, BillingEvent, Payment
from billing.payments.offline import payment_record_offline
from tests.factories import CustomerAccountFactory, make_bill


def test_totals_are_computed_from_the_lines(account):
    bill = make_bill(account, amounts=(1000, 2550), tax=357, issue=False)
    assert (bill.subtotal, bill.tax, bill.total) == (3550, 357, 3907)
    assert bill.status == Bill.Status.DRAFT
    assert bill.balance_due == 0  # a draft is not owed yet


def test_issue_opens_the_bill_and_records_who_did_it(account, staff_user):
    bill = make_bill(account, issue=False)
    bill_issue(bill=bill, actor=staff_user)
    bill.refresh_from_db()
    assert bill.status == Bill.Status.OPEN
    assert bill.issue_date is not None
    assert bill.balance_due == bill.total
    event = bill.events.get(kind=BillingEvent.Kind.BILL_STATUS)
    assert (event.from_status, event.to_status, event.actor) == ("draft", "open", staff_user)


def test_issuing_twice_is_refused(account):
    bill = make_bill(account)
    with pytest.raises(ApplicationError, match="already been issued"):
        bill_issue(bill=bill)


@pytest.mark.parametrize(
    ("setup", "target"),
    [
        ("void", Bill.Status.OPEN),
        ("void", Bill.Status.PAID),
        ("draft", Bill.Status.PAID),
        ("draft", Bill.Status.UNCOLLECTIBLE),
        ("paid", Bill.Status.VOID),
        ("paid", Bill.Status.UNCOLLECTIBLE),
    ],
)
def test_illegal_transitions_are_refused_and_change_nothing(account, setup, target):
    bill = make_bill(account, issue=setup != "draft")
    if setup == "void":
        bill_void(bill=bill)
    elif setup == "paid":
        payment_record_offline(account=account, amount=bill.total, method="cash")
    bill.refresh_from_db()
    before = bill.status
    events_before = BillingEvent.objects.count()
    with pytest.raises(ApplicationError, match="cannot become"):
        with transaction.atomic():
            bill_status_move(bill=bill, to=target)
    bill.refresh_from_db()
    assert bill.status == before
    assert BillingEvent.objects.count() == events_before


def test_every_allowed_transition_is_in_one_map():
    for source, targets in Bill.TRANSITIONS.items():
        assert source in Bill.Status.values
        assert targets <= set(Bill.Status.values)
    assert Bill.TRANSITIONS[Bill.Status.VOID] == set()


def test_void_refused_when_money_was_paid(account):
    bill = make_bill(account, amounts=(5000,))
    payment_record_offline(account=account, amount=1000, method="cash")
    with pytest.raises(ApplicationError, match="Refund them before voiding"):
        bill_void(bill=bill)
    bill.refresh_from_db()
    assert bill.status == Bill.Status.OPEN


def test_partial_payment_keeps_the_bill_open_with_a_smaller_balance(account):
    bill = make_bill(account, amounts=(5000,))
    payment = payment_record_offline(account=account, amount=1200, method="cheque", reference="00123")
    bill.refresh_from_db()
    assert bill.status == Bill.Status.OPEN
    assert bill.balance_due == 3800
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.allocations.get().amount == 1200


def test_payment_goes_to_the_oldest_bill_first(account):
    newer = make_bill(account, amounts=(3000,), due_in_days=30)
    older = make_bill(account, amounts=(2000,), due_in_days=5)
    payment_record_offline(account=account, amount=2500, method="cash")
    older.refresh_from_db()
    newer.refresh_from_db()
    assert (older.status, older.balance_due) == (Bill.Status.PAID, 0)
    assert (newer.status, newer.balance_due) == (Bill.Status.OPEN, 2500)


def test_overpayment_is_refused_and_nothing_is_saved(account):
    make_bill(account, amounts=(2000,))
    with pytest.raises(ApplicationError, match="more than the"):
        payment_record_offline(account=account, amount=2001, method="cash")
    assert Payment.objects.count() == 0
    assert account.bills.get().amount_paid == 0


def test_offline_payment_only_touches_its_own_account(biller):
    mine = CustomerAccountFactory(biller=biller)
    other = CustomerAccountFactory(biller=biller)
    make_bill(mine, amounts=(1000,))
    theirs = make_bill(other, amounts=(1000,))
    payment_record_offline(account=mine, amount=1000, method="cash")
    theirs.refresh_from_db()
    assert theirs.amount_paid == 0


def test_cheque_needs_its_number(account):
    make_bill(account)
    with pytest.raises(ApplicationError, match="cheque number"):
        payment_record_offline(account=account, amount=100, method="cheque")


def test_database_refuses_an_overpaid_bill_even_past_the_services(account):
    bill = make_bill(account, amounts=(1000,))
    with pytest.raises(IntegrityError), transaction.atomic():
        Bill.objects.filter(pk=bill.pk).update(amount_paid=1001)


def test_database_refuses_negative_amounts(account):
    bill = make_bill(account, amounts=(1000,))
    with pytest.raises(IntegrityError), transaction.atomic():
        Bill.objects.filter(pk=bill.pk).update(subtotal=-1, total=-1)


def test_duplicate_bill_number_is_a_clear_error(account):
    make_bill(account, number="INV-1")
    with pytest.raises(ApplicationError, match="INV-1 already exists"):
        make_bill(account, number="INV-1")


def test_zero_bill_is_issued_straight_to_paid(account):
    bill = make_bill(account, amounts=(0,))
    assert bill.status == Bill.Status.PAID


def test_a_new_biller_gets_sensible_policy_defaults(db):
    from billing.models import Biller

    biller = Biller.objects.create(name="Lakeside Gas", slug="lakeside")
    assert biller.reminder_schedule == [-5, 0, 3, 10]
    assert biller.retry_schedule == [1, 3, 5, 7]
    assert biller.tip_presets == [15, 20, 25] and biller.tips_enabled is False
    # Each biller gets its own list (a shared mutable default would leak one biller's edit into the next).
    biller.reminder_schedule.append(30)
    assert Biller(name="Other", slug="other").reminder_schedule == [-5, 0, 3, 10]
