"""Autopay's batch of claimed rows (`autopay_charge_batch`, the sweeper's task): each step made once for the batch, so a
batch of five costs the queries of a batch of one; every row charged exactly once, whatever else runs; a row whose
card declines goes on to its backup card alone; two rows of one account each pay their own bill; the accounts'
locks are held for at most the lock budget of confirming; a bill paid another way while the batch ran is not charged.

Against real localstripe where the gateway's answers matter, else the stand-in gateway of autopay_support."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.autopay.charging import autopay_charge, autopay_charge_batch
from billing.autopay.planning import autopay_plan, autopay_sweep
from billing.models import AutopayCharge, Bill, BillingEvent, Payment, PaymentAllocation
from billing.payments.attempts import install_key
from billing.payments.gateway import GatewayUnavailable
from billing.payments.offline import payment_record_offline
from tests.billing.autopay.test_autopay_runs import FAILS_ON_CHARGE, VISA, _in_threads, autopay_payer, intents
from tests.billing.autopay_support import OK, Driver, FakeGateway, enroll, make_user, saved_card, use_gateway
from tests.factories import CustomerAccountFactory, make_bill

S = AutopayCharge.Status
# A batch of any size, on PostgreSQL: (1) the rows locked and read with their bills, accounts, billers, enrolments and
# cards; the payments' ids from their sequence and the payments by COPY; their history rows, the rows' claims, the
# gateway calls' rows and the tries in one statement; (2) the intents' ids and their calls' rows in one statement;
# (3) the accounts, the tries with their rows and payments, and the payable bills locked; every row's writes (the
# confirms' rows, the payments' successes, allocations, bills and history, the tries, the rows' statuses and events)
# in one statement; bill_paid's receivers once (the waiting rows of paid bills, the plans' one look). SQLite sends
# each part of a step as a statement of its own, and the payments with RETURNING.
BATCH_QUERIES = {"postgresql": 11, "sqlite": 21}
SAVEPOINTS = 6  # the test runs inside a transaction: each step's atomic block is a savepoint pair


@pytest.fixture
def driver(django_capture_on_commit_callbacks):
    return Driver(django_capture_on_commit_callbacks)


def _payers(biller, django_user_model, amounts) -> list:
    """One account per amount, its payer enrolled with a card `pm_<i>` at the stand-in gateway, and a bill for the
    amount due today; returns the bills."""
    bills = []
    for i, amount in enumerate(amounts):
        account = CustomerAccountFactory(biller=biller)
        user = make_user(django_user_model)
        enroll(account, user, saved_card(user, f"pm_{i}", default=True))
        bills.append(make_bill(account, amounts=(amount,), due_in_days=0))
    return bills


@pytest.mark.django_db
def test_a_batch_of_five_costs_the_queries_of_a_batch_of_one_and_charges_each_bill_once(
    stripe_settings, localstripe, biller, django_user_model, django_assert_num_queries,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    bills = []
    for i in range(6):
        account = CustomerAccountFactory(biller=biller)
        autopay_payer(account, django_user_model)
        bills.append(make_bill(account, amounts=(1000 + i * 111,), due_in_days=0))
    autopay_plan()
    claimed = autopay_sweep(now=timezone.now() + timezone.timedelta(days=1), enqueue=False).claimed
    assert len(claimed) == 6
    install_key()  # made once per database and remembered by the worker process
    for batch in (claimed[:1], claimed[1:]):
        with django_capture_on_commit_callbacks(execute=True):
            with django_assert_num_queries(BATCH_QUERIES[connection.vendor] + SAVEPOINTS):
                assert autopay_charge_batch(charge_ids=batch) == {pk: S.SUCCEEDED for pk in batch}

    succeeded = intents(localstripe, "succeeded")
    assert len(succeeded) == len(intents(localstripe)) == 6
    for bill in bills:
        bill.refresh_from_db()
        assert bill.status == Bill.Status.PAID and bill.amount_paid == bill.total
        (payment,) = Payment.objects.filter(account=bill.account)
        assert payment.status == Payment.Status.SUCCEEDED and payment.amount == bill.total
        assert [i["amount"] for i in succeeded if i["id"] == payment.gateway_payment_id] == [bill.total]
        assert list(payment.allocations.values_list("bill_id", "amount")) == [(bill.pk, bill.total)]
        assert sorted(payment.attempts.values_list("kind", "outcome")) == [("confirm", "succeeded"),
                                                                          ("create", "pending")]  # fmt: skip
        assert list(BillingEvent.objects.filter(payment=payment).order_by("pk").values_list("kind", flat=True)) == [
            "payment_recorded", "payment_status", "payment_applied"
        ]
        charge = AutopayCharge.objects.get(bill=bill)
        assert charge.status == S.SUCCEEDED and charge.payment == payment
        assert payment.autopay_try.outcome == "succeeded"
        assert [e.to_status for e in charge.events.order_by("pk")] == ["scheduled", "charging", "succeeded"]


@pytest.mark.django_db
def test_a_declined_row_goes_on_to_its_backup_card_and_the_rest_of_the_batch_is_paid(
    stripe_settings, localstripe, biller, django_user_model, driver
):
    failing = CustomerAccountFactory(biller=biller)
    autopay_payer(failing, django_user_model, default=FAILS_ON_CHARGE, backup=VISA)
    failing_bill = make_bill(failing, amounts=(3300,), due_in_days=0)
    paying = CustomerAccountFactory(biller=biller)
    autopay_payer(paying, django_user_model)
    paying_bill = make_bill(paying, amounts=(2200,), due_in_days=0)
    driver.plan()

    assert driver.run() == [S.SUCCEEDED, S.SUCCEEDED]  # one batch: the claimed rows

    for bill in (failing_bill, paying_bill):
        bill.refresh_from_db()
        assert bill.status == Bill.Status.PAID and bill.amount_paid == bill.total
    charge = AutopayCharge.objects.get(bill=failing_bill)
    assert [(t.method_role, t.outcome) for t in charge.tries.order_by("pk")] == [
        ("default", "declined"), ("backup", "succeeded")
    ]
    assert sorted(i["amount"] for i in intents(localstripe, "succeeded")) == [2200, 3300]
    assert len(intents(localstripe)) == 3  # the declined one, and one success each


@pytest.mark.django_db
def test_two_rows_of_one_account_each_pay_their_own_bill_and_nothing_more(
    account, django_user_model, monkeypatch, driver
):
    user = make_user(django_user_model)
    enroll(account, user, saved_card(user, "pm_default", default=True))
    first = make_bill(account, amounts=(4000,), due_in_days=0)
    second = make_bill(account, amounts=(2500,), due_in_days=0)
    gateway = FakeGateway({"pm_default": OK})
    use_gateway(monkeypatch, gateway)
    driver.plan()

    assert driver.run() == [S.SUCCEEDED, S.SUCCEEDED]

    assert sorted(gateway.intents[i]["amount"] for i in gateway.succeeded()) == [2500, 4000]
    for bill in (first, second):
        bill.refresh_from_db()
        assert bill.status == Bill.Status.PAID and bill.amount_paid == bill.total
    assert sum(PaymentAllocation.objects.filter(bill__account=account).values_list("amount", flat=True)) == 6500


def _account_locks(queries) -> int:
    """How many times step 3 locked the accounts: once a round (SQLite runs the query without FOR UPDATE)."""
    return sum(1 for q in queries if q["sql"].startswith('SELECT "billing_customeraccount"."id" AS "pk" FROM'))


@pytest.mark.django_db
@pytest.mark.parametrize(("budget", "rounds"), [(60, 1), (0, 3)])
def test_the_lock_budget_splits_the_confirms_into_rounds_that_each_commit(
    budget, rounds, biller, django_user_model, monkeypatch, settings, django_capture_on_commit_callbacks
):
    """The accounts stay locked while their rows confirm; past AUTOPAY_BATCH_LOCK_SECONDS the round commits what it
    confirmed and the rest go in the next round (at least one row a round), so a payer paying one of these accounts
    by hand waits about one confirm."""
    settings.AUTOPAY_BATCH_LOCK_SECONDS = budget
    bills = _payers(biller, django_user_model, [900, 901, 902])
    gateway = FakeGateway({})
    use_gateway(monkeypatch, gateway)
    autopay_plan()
    claimed = autopay_sweep(now=timezone.now() + timezone.timedelta(days=1), enqueue=False).claimed

    with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as seen:
        assert autopay_charge_batch(charge_ids=claimed) == {pk: S.SUCCEEDED for pk in claimed}

    assert _account_locks(seen.captured_queries) == rounds
    assert len(gateway.succeeded()) == 3
    assert all(Bill.objects.get(pk=b.pk).status == Bill.Status.PAID for b in bills)


class _PaysOneBillWhileCreating(FakeGateway):
    """Stands in for the gateway; while the batch creates its intents (step 2, no lock held), staff record cash at
    the counter for one of the bills."""

    def __init__(self, behaviour, *, bill):
        super().__init__(behaviour)
        self.bill = bill

    def create_payment_intent(self, **kwargs):
        if self.bill is not None:
            bill, self.bill = self.bill, None
            with transaction.atomic():
                payment_record_offline(account=bill.account, amount=bill.balance_due, method="cash")
        return super().create_payment_intent(**kwargs)


@pytest.mark.django_db
def test_a_bill_paid_another_way_while_the_batch_runs_is_not_charged(
    biller, django_user_model, monkeypatch, driver
):
    bills = _payers(biller, django_user_model, [1500, 1500])
    gateway = _PaysOneBillWhileCreating({}, bill=bills[0])
    use_gateway(monkeypatch, gateway)
    driver.plan()

    assert driver.run() == [S.CANCELLED, S.SUCCEEDED]

    assert gateway.confirms() == ["pm_1"]  # the paid bill's intent was never confirmed, and was cancelled
    assert ("cancel", "pm_0") in gateway.calls
    assert AutopayCharge.objects.get(bill=bills[0]).reason == AutopayCharge.Reason.PAID_ELSEWHERE
    for bill in bills:
        bill.refresh_from_db()
        assert bill.status == Bill.Status.PAID and bill.amount_paid == 1500


@pytest.mark.postgres
def test_a_batch_delivered_twice_and_its_rows_tasks_all_at_once_charge_each_bill_once(
    require_postgres, transactional_db, stripe_settings, localstripe, biller, django_user_model
):
    bills = []
    for i in range(4):
        account = CustomerAccountFactory(biller=biller)
        autopay_payer(account, django_user_model)
        bills.append(make_bill(account, amounts=(1200 + i,), due_in_days=0))
    autopay_plan()
    claimed = autopay_sweep(now=timezone.now() + timezone.timedelta(days=1), enqueue=False).claimed

    # The batch task redelivered (acks_late) and each row enqueued alone again (a lost-message sweep), all at once.
    runs = [lambda: autopay_charge_batch(charge_ids=claimed), lambda: autopay_charge_batch(charge_ids=claimed)]
    runs += [lambda pk=pk: {pk: autopay_charge(charge_id=pk)} for pk in claimed]
    results = _in_threads(lambda i: runs[i](), len(runs))

    outcomes = [outcome for result in results for outcome in result.values()]
    assert outcomes.count(S.SUCCEEDED) == 4 and set(outcomes) <= {S.SUCCEEDED, "noop"}
    assert len(intents(localstripe, "succeeded")) == 4
    for bill in bills:
        bill.refresh_from_db()
        assert bill.status == Bill.Status.PAID and bill.amount_paid == bill.total
        assert Payment.objects.filter(account=bill.account, status=Payment.Status.SUCCEEDED).count() == 1


@pytest.mark.django_db
def test_the_sweep_hands_its_claimed_rows_to_batch_tasks(account, django_user_model, monkeypatch, settings):
    from billing.autopay.tasks import autopay_charge_batch_task

    settings.AUTOPAY_CHARGE_BATCH_SIZE = 4
    user = make_user(django_user_model)
    enroll(account, user, saved_card(user, "pm_default", default=True))
    for _ in range(10):
        make_bill(account, amounts=(700,), due_in_days=0)
    autopay_plan()
    batches = []
    monkeypatch.setattr(autopay_charge_batch_task, "delay_on_commit", batches.append)

    claimed = autopay_sweep(now=timezone.now() + timezone.timedelta(days=1)).claimed

    assert [len(batch) for batch in batches] == [4, 4, 2]
    assert [pk for batch in batches for pk in batch] == claimed


class _CutsAnswers(FakeGateway):
    """Stands in for the gateway and loses its answer for one card: on create (`create_for`, nothing made) or after
    the confirm (`confirm_for`: the charge went through, the answer never arrived)."""

    def __init__(self, behaviour, *, create_for=None, confirm_for=None):
        super().__init__(behaviour)
        self.create_for, self.confirm_for = create_for, confirm_for

    def create_payment_intent(self, *, payment_method=None, **kwargs):
        if payment_method == self.create_for:
            self.create_for = None
            raise GatewayUnavailable("connection reset")
        return super().create_payment_intent(payment_method=payment_method, **kwargs)

    def confirm_payment_intent(self, intent_id, **kwargs):
        result = super().confirm_payment_intent(intent_id, **kwargs)
        if self.intents[intent_id]["pm"] == self.confirm_for:
            self.confirm_for = None
            raise GatewayUnavailable("read timeout")
        return result


@pytest.mark.django_db
def test_answers_cut_for_one_row_leave_it_to_resume_and_the_rest_of_the_batch_is_recorded(
    biller, django_user_model, monkeypatch, settings, driver
):
    bills = _payers(biller, django_user_model, [1100, 1101, 1102])
    gateway = _CutsAnswers({}, create_for="pm_0", confirm_for="pm_1")
    use_gateway(monkeypatch, gateway)
    driver.plan()

    assert driver.run() == ["gateway_error", "gateway_error", S.SUCCEEDED]

    # pm_0: no intent; pm_1: charged at the gateway, not recorded; pm_2 recorded. Both stay charging with a pending try.
    assert [Bill.objects.get(pk=b.pk).status for b in bills] == [Bill.Status.OPEN, Bill.Status.OPEN, Bill.Status.PAID]
    assert sorted(gateway.intents[i]["pm"] for i in gateway.succeeded()) == ["pm_1", "pm_2"]
    for bill in bills[:2]:
        charge = AutopayCharge.objects.get(bill=bill)
        assert charge.status == S.CHARGING and charge.tries.get().outcome == "pending"

    # After the charging timeout the sweeper reclaims them; each resumes alone: pm_0 is created and charged, pm_1 is
    # asked about and recorded, not charged again.
    settings.AUTOPAY_CHARGING_TIMEOUT_SECONDS = 0
    assert driver.run(days=1.01) == [S.SUCCEEDED, S.SUCCEEDED]
    assert [Bill.objects.get(pk=b.pk).status for b in bills] == [Bill.Status.PAID] * 3
    assert sorted(gateway.intents[i]["pm"] for i in gateway.succeeded()) == ["pm_0", "pm_1", "pm_2"]
    assert sorted(gateway.confirms()) == ["pm_0", "pm_1", "pm_2"]  # one confirm each
    assert Payment.objects.filter(status=Payment.Status.SUCCEEDED).count() == 3
