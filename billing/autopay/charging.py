"""Autopay charging: runs of claimed rows, alone or in batches, charging off-session, exactly once.

State machine of an `AutopayCharge` (the map is `AutopayCharge.TRANSITIONS`; `charges.charge_status_move` is the only
writer):

    scheduled ──sweeper──> charging ──> succeeded
        │                     │ ├────> retry_scheduled ──sweeper──> charging …
        │                     │ ├────> failed_final   (hard or authentication decline on every card; last retry)
        └──> cancelled <──────┘ └────> cancelled      (bill paid another way, autopay off, above the maximum)

One charge run (`autopay_charge`, the body of `autopay_charge_task`) makes at most two off-session charges: the autopay
card, and when that declines (any decline) the payer's backup card, once per bill. What happens next is decided by the
decline class (`billing.payments.gateway.decline_classify`) in `billing.autopay.dunning`: a hard or authentication decline takes
that card out for good; a soft one leaves it in. With a card still in, the next attempt waits `biller.retry_schedule`
days after the first failure; with none, or after the last retry, the row stops (failed_final) and the payer is told,
with the pay link. After the last retry the enrolment is suspended (through its transition map) and past-due reminders
take over.

Exactly once. A charge is a Payment (channel autopay) whose idempotency key `autopay-<install>-<row>-<attempt>-<card>`
(salted with this database's key: billing.payments.attempts.install_key) sits in a unique column, with an
`AutopayChargeTry` that is unique per (row, attempt, card). The work is split so that a worker killed at any point can
be resumed from the database alone:
  1. with the row locked (its claim: `started_at`), read the row, its bill, enrolment and card in one query; write
     the Payment for what the bill owes now, the try, and the rows of the two gateway calls to come (commit);
  2. no lock held: create the PaymentIntent, unconfirmed (no money moves), and store its id (commit);
  3. under the account, row and bill locks: re-check the bill is still owed and autopay still on, confirm the
     intent, and record the result through the payment core's one apply path (commit).
A redelivered or reclaimed run finds the pending try and asks the gateway about its intent instead of creating one;
an intent that was never stored (a crash inside step 2) was never confirmed, so it can never be charged. While step 3
holds the bill lock, an offline payment (which locks the bills) and a guest payment (which locks the account) wait, so
nothing is charged after a bill is paid another way; and the payment services apply at most what is owed now.

Batches. The sweeper's claimed rows are charged by `autopay_charge_batch` (the body of `autopay_charge_batch_task`):
the same three steps, each made once for a batch's rows, with step 3 holding its locks for at most
AUTOPAY_BATCH_LOCK_SECONDS of confirming before it commits and takes them again for the rest. A row the batch does
not run (a resumed try, the backup card after a decline, a bank debit, a plan's instalment, a row that must stop)
runs alone through `autopay_charge`.

Cost: each row is read once per step that needs it and locked once per charge (step 3; step 1's row lock is the
claim), the enrolment and the cards are read once per run. A batch of any size makes 11 queries on PostgreSQL (21
on SQLite; tests/billing/autopay/test_autopay_batch.py), a row run alone 11 too (test_autopay_throughput.py), in
three short transactions and none after commit (receipts are raised in batches by the notifications sweep). The
small writes of a step that do not read each other go as one statement on PostgreSQL (`billing.bulk.WriteBatch`):
same rows, same transaction, same constraints. Two gateway requests, not one `confirm=true` create: the intent's id
is committed before anything can charge it, so a worker killed mid-charge never leaves a charged intent we cannot
find (docs/performance.md).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from billing.bulk import WriteBatch, rows_create
from billing.clock import biller_today
from billing.events import event_new
from billing.payments import gateway as gateway_api
from billing.payments.allocations import bills_paid_announced_once, payable_bills_lock
from billing.payments.attempts import (
    account_lock,
    install_key,
    intent_outcome,
    payment_confirm_attempt_open,
    payment_confirm_off_session,
    payment_gateway_call,
    payment_intent_cancel,
    payment_intent_retrieve,
    payment_status_move,
)
from billing.payments.core import confirmation_number_new, payment_sync
from billing.payments.gateway import GatewayError, IntentResult, IntentStatus, PaymentDeclined
from billing.plans.selectors import instalment_charge_amount

from ..models import (
    AutopayCharge,
    AutopayChargeTry,
    AutopayEnrollment,
    BankMandate,
    Bill,
    BillingEvent,
    CustomerAccount,
    Payment,
    PaymentAttempt,
    PaymentMethod,
    PlanInstalment,
)
from .charges import charge_status_move
from .dunning import charge_conclude, charge_declined
from .notices import debit_notice_given
from .selectors import autopay_cards, charge_mandate

logger = logging.getLogger(__name__)

Status = AutopayCharge.Status
Role = AutopayCharge.MethodRole
Reason = AutopayCharge.Reason
Outcome = AutopayChargeTry.Outcome


@dataclass
class ChargeRun:
    """One run of a claimed row, across its passes (the autopay card, then the backup card): what was read once."""

    charge_id: int
    claimed: bool = False
    enrollment: AutopayEnrollment | None = None  # read with the row on the first pass; its cards are memoised on it
    account: object = None
    mandate: object = None  # what authorises the row: the enrolment, or the plan of an instalment (charge_mandate)
    instalment: PlanInstalment | None = None  # a plan's instalment, with its plan and card, read on the first pass
    # Step 1's rows for the gateway calls of a fresh try (a resumed try writes new ones, as any retried call does).
    create_row: PaymentAttempt | None = None
    confirm_row: PaymentAttempt | None = None
    writes: WriteBatch | None = None  # step 3's small writes, sent together before it commits
    # In a batch's step 3 (`_batch_confirm`): a success's rows are queued on `writes` too, for the round to send.
    batched: bool = False
    after_commit: list = field(default_factory=list)  # gateway calls that need no lock: made after step 3 commits


def autopay_charge(*, charge_id: int) -> str:
    """Run a claimed row: charge the autopay card, and the backup card once if it declines. Returns the row's status
    afterwards, or "noop" when another delivery of the task has this claim (or the row is not charging)."""
    return _charge_passes(ChargeRun(charge_id))


def _charge_passes(run: ChargeRun) -> str:
    for _ in range(4):  # at most two tries (autopay card, backup card) and two passes that skip a missing card
        outcome = _charge_step(run)
        if outcome != "continue":
            return outcome
    return AutopayCharge.objects.values_list("status", flat=True).get(pk=run.charge_id)


# --------------------------------------------------------------------------------------------------------------------
# A batch of claimed rows (the sweeper's task): the same three steps, each made once for all the rows


def autopay_charge_batch(*, charge_ids: list[int]) -> dict[int, str]:
    """Run a batch of claimed rows, as `autopay_charge` runs one, with each step made once for the batch: step 1 locks
    and reads the rows in one query and writes their payments in one INSERT and the rest in one more; step 2 creates
    their intents, then stores every intent id in one commit before any is confirmed; step 3 locks the accounts, the
    rows and the payable bills in one query each, confirms each row under those locks and records it through the
    payment core, and commits once. Step 3 holds the locks for at most AUTOPAY_BATCH_LOCK_SECONDS of confirming:
    the rows left then go in another round, so a payer paying one of these accounts by hand waits about one
    confirm, not the batch's.

    Only a row's first try of an attempt on a card is batched (the usual case: the autopay card, due today). A row
    that resumes a try, retries on its backup card, charges a bank account or a plan's instalment, or must stop is
    left unclaimed by the batch and run by `autopay_charge` afterwards, as is a batched row whose card declined and
    that goes on to its backup card. Everything a killed worker leaves is what `autopay_charge` leaves, and is
    resumed the same way: a row charging with a pending try. Returns each row's outcome, as `autopay_charge` does."""
    outcomes: dict[int, str] = {}
    started = _batch_start(charge_ids, outcomes)
    created = _batch_create(started, outcomes)
    runs = {run.charge_id: run for run, _attempt in created}
    while created:
        created = _batch_confirm(created, outcomes)
    for charge_id in charge_ids:
        outcome = outcomes.get(charge_id)
        if outcome is None:
            outcomes[charge_id] = autopay_charge(charge_id=charge_id)
        elif outcome == "continue":
            outcomes[charge_id] = _charge_passes(runs[charge_id])
    return outcomes


def _batch_start(charge_ids: list[int], outcomes: dict[int, str]) -> list[tuple[ChargeRun, AutopayChargeTry]]:
    """Step 1 for the batch, in one transaction: lock the rows (in primary-key order), claim those the batch runs,
    and write their payments and tries. A row another delivery has claimed is "noop"; a row the batch does not run is
    left as it was."""
    with transaction.atomic():
        fresh, payments, rows = [], [], _TryRows()
        for charge in _charges_locked(first=True).filter(pk__any_of=charge_ids).order_by("pk"):
            if charge.status != Status.CHARGING or charge.started_at is not None:
                outcomes[charge.pk] = "noop"
                continue
            if not _batch_runs(charge):
                continue
            run = ChargeRun(charge.pk, claimed=True, enrollment=charge.enrollment, account=charge.account,
                            mandate=charge.enrollment)  # fmt: skip
            charge.started_at = timezone.now()
            fresh.append((run, charge))
            payments.append(_try_payment(run, charge=charge, role=Role.DEFAULT, card=charge.enrollment.payment_method))
        if not fresh:
            return []
        rows_create(payments)
        started = [
            (run, _try_rows(run, charge=charge, role=Role.DEFAULT, card=charge.enrollment.payment_method,
                            payment=payment, rows=rows))
            for (run, charge), payment in zip(fresh, payments)
        ]  # fmt: skip
        writes = WriteBatch()
        rows.queue(writes)
        writes.run()
    return started


def _batch_runs(charge: AutopayCharge) -> bool:
    """Whether the batch runs this claimed row: a fresh attempt on the autopay card, a card (not a bank account: its
    debit waits for its pre-notification), still usable, and nothing that stops the charge."""
    enrollment = charge.enrollment
    if charge.instalment_id or enrollment is None or charge.has_current_tries or charge.default_out:
        return False
    card = enrollment.payment_method
    if card.is_bank_account or _stop_reason(charge, charge.bill, enrollment):
        return False
    return autopay_cards(enrollment=enrollment, today=biller_today(charge.account.biller))[Role.DEFAULT] is not None


def _batch_create(started, outcomes: dict[int, str]) -> list[tuple[ChargeRun, AutopayChargeTry]]:
    """Step 2 for the batch, no lock held: create each try's intent, unconfirmed, then store every intent id in one
    commit. A worker killed before that commit leaves intents nobody confirmed (never charged); the resumed try
    creates its intent again with the same idempotency key, so the gateway hands back the same one."""
    writes, created = WriteBatch(), []
    for run, attempt in started:
        if _intent_create(run, attempt, writes=writes) is None:
            logger.warning("autopay charge %s: intent not created, will resume", run.charge_id)
            outcomes[run.charge_id] = "gateway_error"  # charging with a pending try: a reclaim resumes it
        else:
            created.append((run, attempt))
    with transaction.atomic():
        writes.run()
    return created


def _batch_confirm(created, outcomes: dict[int, str]) -> list[tuple[ChargeRun, AutopayChargeTry]]:
    """Step 3 for the batch, in one transaction: lock the accounts, then the rows with their tries and payments, then
    the accounts' payable bills (each in primary-key order, one query each: the lock order of billing/payments/),
    then confirm and record row after row as `autopay_charge` does. Returns the rows left when the lock budget ran
    out (at least one row is confirmed each round)."""
    budget_ends = time.monotonic() + settings.AUTOPAY_BATCH_LOCK_SECONDS
    confirm_rows = {run.charge_id: _fresh(run.confirm_row, attempt.payment) for run, attempt in created}
    done, left = [], []
    with transaction.atomic():
        account_ids = sorted({attempt.payment.account_id for _run, attempt in created})
        accounts = CustomerAccount.objects.select_for_update().filter(pk__any_of=account_ids).order_by("pk")
        list(accounts.values_list("pk"))  # locked, not read
        tries = _tries_locked().filter(pk__any_of=[attempt.pk for _run, attempt in created]).in_bulk()
        bills: dict[int, list[Bill]] = {account_id: [] for account_id in account_ids}
        for bill in payable_bills_lock(account_ids=account_ids):
            bills[bill.account_id].append(bill)
        writes = WriteBatch()
        # Every row's writes go in one statement at the end (PostgreSQL; a few elsewhere): the confirms' rows, the
        # payments' successes with their allocations, bills and history, the tries, the rows' statuses and events.
        # The rows of one account share its bills' instances: a row's re-check and its payment's application see
        # what the rows before it put on them, and each bill is written once, as it ends up.
        # The rows batched are charging: bill_paid's receivers change only waiting rows and plans, so they run once
        # for the round's bills, after those writes.
        with bills_paid_announced_once():
            for run, attempt in created:
                if done and time.monotonic() > budget_ends:
                    left.append((run, attempt))
                    continue
                run.writes, run.batched = writes, True
                run.create_row = run.confirm_row = None
                attempt = tries[attempt.pk]
                outcomes[run.charge_id] = _confirm_locked(
                    run, attempt, bills=bills[attempt.payment.account_id], confirm_row=confirm_rows[run.charge_id],
                    resuming=False,
                )  # fmt: skip
                done.append(run)
            writes.run()
    for run in done:
        run.batched = False  # a row going on to its backup card runs alone, as autopay_charge does
        for call in run.after_commit:
            call()
        run.after_commit.clear()
    return left


def _charge_step(run: ChargeRun) -> str:
    """One pass: start (or resume) the next try of the current attempt and run it. "continue" asks for another pass
    (the backup card after a decline, or the next card when one is missing)."""
    with transaction.atomic():
        charge = _charge_read(run)
        if not run.claimed:
            # The claim: one run per sweeper claim. A second delivery waits for this lock, then finds it started.
            if charge.status != Status.CHARGING or charge.started_at is not None:
                return "noop"
            run.claimed = True
            charge.started_at = timezone.now()  # saved with this pass's first write below
        elif charge.status != Status.CHARGING:
            return charge.status
        current = []
        if charge.has_current_tries:
            current = list(
                charge.tries.filter(attempt_number=charge.attempt_number).select_related("payment").order_by("pk")
            )
        pending = next((t for t in current if t.outcome == Outcome.PENDING), None)
        resuming = pending is not None
        if resuming:
            charge.save(update_fields=["started_at", "updated_at"])
        else:
            role = _next_role(charge, current)
            if role is None:
                return charge_conclude(charge, charge.bill, current[-1] if current else None)
            stop = _stop_reason(charge, charge.bill, run.enrollment)
            if stop:
                charge_status_move(charge, Status.CANCELLED, reason=stop, next_attempt_at=None, message=stop)
                return charge.status
            card = autopay_cards(enrollment=run.mandate, today=biller_today(run.account.biller))[role]
            if card is not None and card.is_bank_account and not debit_notice_given(charge):
                card = None  # never debit a bank account its pre-notification did not announce
            if card is None:
                # Removed or expired since enrolment: that card is out, as after a hard decline.
                if role == Role.DEFAULT:
                    charge.default_out = True
                else:
                    charge.backup_out = charge.backup_tried = True
                charge.save(update_fields=["started_at", "default_out", "backup_out", "backup_tried", "updated_at"])
                return "continue"
            pending = _try_start(run, charge=charge, role=role, card=card)
    return _try_run(run, pending, resuming=resuming)


def _charge_read(run: ChargeRun) -> AutopayCharge:
    """Step 1's one read, with the row locked: the row, its bill, its account and biller, its enrolment and card
    (first pass only; later passes keep them), and whether the current attempt has tries already."""
    charge = _charges_locked(first=not run.claimed).get(pk=run.charge_id)
    if run.claimed:
        charge.account, charge.enrollment = run.account, run.enrollment
        if run.instalment is not None:
            charge.instalment = run.instalment
    else:
        if charge.instalment_id:
            run.instalment = charge.instalment = PlanInstalment.objects.select_related("plan__payment_method").get(
                pk=charge.instalment_id
            )
        run.account, run.enrollment = charge.account, charge.enrollment
        run.mandate = charge_mandate(charge)
    return charge


def _charges_locked(*, first: bool):
    """Rows to lock and read: each with its bill, whether its current attempt has tries already, and on a run's first
    pass its account, biller, enrolment and card."""
    current_tries = AutopayChargeTry.objects.filter(charge=OuterRef("pk"), attempt_number=OuterRef("attempt_number"))
    # Six tables at most: PostgreSQL plans a join of nine (with an instalment's plan and its card) exhaustively, which
    # took 5-8 ms of planning for a 0.1 ms lookup. An instalment's plan and card are read by a second query instead.
    related = ["bill", "account__biller", "enrollment__payment_method"] if first else ["bill"]
    return (
        AutopayCharge.objects.select_for_update(of=("self",))
        .select_related(*related)
        .annotate(has_current_tries=Exists(current_tries))
    )


def _next_role(charge: AutopayCharge, current: list[AutopayChargeTry]) -> str | None:
    """The card for the next try of the current attempt, or None when the attempt is over."""
    if not current:  # a fresh attempt: the autopay card while it is in, else the backup card
        if not charge.default_out:
            return Role.DEFAULT
        return Role.BACKUP if not charge.backup_out else None
    last = current[-1]
    if last.outcome in (Outcome.SUCCEEDED, Outcome.CANCELLED):
        return None
    if last.method_role == Role.DEFAULT and not charge.backup_tried and not charge.backup_out:
        return Role.BACKUP  # the backup card, once per bill, right after the autopay card declined
    return None


def _owed(charge: AutopayCharge, bill: Bill) -> int:
    """What this row charges now: the bill's balance, or what the plan's instalment still owes."""
    if charge.instalment_id:
        return instalment_charge_amount(charge.instalment)[0]
    return bill.balance_due


def _stop_reason(charge: AutopayCharge, bill: Bill, enrollment: AutopayEnrollment | None) -> str:
    """Why a try must not start (or confirm), with the bill and the enrolment as last read; for a plan's instalment,
    what the instalment still owes (read again: a payment made another way lowers it)."""
    if charge.instalment_id:
        charge.instalment.refresh_from_db()
        charge.instalment.plan.refresh_from_db()
        return instalment_charge_amount(charge.instalment)[1]
    if bill.status not in Bill.PAYABLE_STATUSES:
        return Reason.PAID_ELSEWHERE if bill.status == Bill.Status.PAID else Reason.NOT_PAYABLE
    if bill.balance_due <= 0:
        return Reason.PAID_ELSEWHERE
    if enrollment.status != AutopayEnrollment.Status.ACTIVE:
        return Reason.AUTOPAY_OFF
    if enrollment.max_amount is not None and bill.balance_due > enrollment.max_amount:
        return Reason.ABOVE_MAX
    return ""


def _try_start(run: ChargeRun, *, charge: AutopayCharge, role: str, card: PaymentMethod) -> AutopayChargeTry:
    """Step 1's writes: the Payment and the try, for what the bill owes now, both carrying the row's idempotency key,
    and the PaymentAttempt rows of the create and the confirm to come (committed before either call is made)."""
    payment = _try_payment(run, charge=charge, role=role, card=card)
    payment.save(force_insert=True)
    # The rest refers to the payment and not to each other: one statement on PostgreSQL (four elsewhere).
    writes, rows = WriteBatch(), _TryRows()
    attempt = _try_rows(run, charge=charge, role=role, card=card, payment=payment, rows=rows)
    rows.queue(writes)
    writes.run()
    return attempt


def _try_payment(run: ChargeRun, *, charge: AutopayCharge, role: str, card: PaymentMethod) -> Payment:
    """A try's Payment, unsaved: what the bill (or the instalment) owes now, keyed on the row, attempt and card."""
    bill = charge.bill
    # Salted with this database's key: the same row, attempt and card in a recreated database is another charge.
    key = f"autopay-{install_key()}-{charge.pk}-{charge.attempt_number}-{role}"
    return Payment(
        biller_id=bill.biller_id, account_id=bill.account_id, confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.AUTOPAY, method=card.kind if card.is_bank_account else Payment.Method.CARD,
        status=Payment.Status.PENDING, currency=bill.currency, amount=_owed(charge, bill),
        payer_email=run.account.email, payment_method_summary=card.short_summary[:64], idempotency_key=key,
        mandate=BankMandate.objects.filter(payment_method=card).first() if card.is_bank_account else None,
    )  # fmt: skip


@dataclass
class _TryRows:
    """Step 1's rows of one or more tries, queued together: one INSERT or UPDATE per table, however many tries."""

    events: list = field(default_factory=list)
    charges: list = field(default_factory=list)
    calls: list = field(default_factory=list)
    tries: list = field(default_factory=list)

    def queue(self, writes: WriteBatch) -> None:
        writes.insert(self.events)
        writes.update(self.charges, ["started_at", "backup_tried", "last_method_role", "amount", "updated_at"])
        writes.insert(self.calls, ids=True)
        writes.insert(self.tries, ids=True)


def _try_rows(
    run: ChargeRun, *, charge: AutopayCharge, role: str, card: PaymentMethod, payment: Payment, rows: _TryRows
) -> AutopayChargeTry:
    """The saved payment's history row, the row's claim and role, the two gateway calls' rows and the try, added to
    `rows` (the try and the call rows get their ids when they are written)."""
    rows.events.append(event_new(
        kind=BillingEvent.Kind.PAYMENT_RECORDED, payment=payment, to_status=payment.status, amount=payment.amount,
        currency=payment.currency, message=f"autopay charge {charge.pk}, attempt {charge.attempt_number}, {role} card",
    ))  # fmt: skip
    if role == Role.BACKUP:
        charge.backup_tried = True
    charge.last_method_role, charge.amount = role, payment.amount
    rows.charges.append(charge)
    key = payment.idempotency_key
    run.create_row, run.confirm_row = calls = [
        PaymentAttempt(payment=payment, kind=PaymentAttempt.Kind.CREATE, amount=payment.amount,
                       currency=payment.currency, outcome=PaymentAttempt.Outcome.PENDING, idempotency_key=key),
        PaymentAttempt(payment=payment, kind=PaymentAttempt.Kind.CONFIRM, amount=payment.amount,
                       currency=payment.currency, outcome=PaymentAttempt.Outcome.PENDING,
                       idempotency_key=f"{key}:confirm"),
    ]  # fmt: skip
    rows.calls.extend(calls)
    attempt = AutopayChargeTry(
        charge=charge, attempt_number=charge.attempt_number, method_role=role, payment_method=card, payment=payment
    )
    rows.tries.append(attempt)
    return attempt


def _try_run(run: ChargeRun, attempt: AutopayChargeTry, *, resuming: bool) -> str:
    """Steps 2 and 3 for one try: make sure an intent exists (stored before it is confirmed), then confirm and record
    under the locks. A resumed try asks the gateway where its intent stands first."""
    payment = attempt.payment
    if not payment.gateway_payment_id:
        # One commit for the call's attempt row and the intent id (one statement on PostgreSQL). No row is locked
        # while the gateway answers.
        with transaction.atomic():
            writes = WriteBatch()
            intent = _intent_create(run, attempt, writes=writes)
            writes.run()
        if intent is None:
            # Nothing was confirmed. The row stays charging; a reclaim after the timeout resumes this try.
            logger.warning("autopay charge %s: intent not created, will resume", run.charge_id)
            return "gateway_error"
        resuming = False
    confirm_row = _fresh(run.confirm_row, payment) or payment_confirm_attempt_open(payment)
    run.create_row = run.confirm_row = None
    with transaction.atomic():
        run.writes = WriteBatch()
        outcome = _locked_confirm(run, attempt, confirm_row=confirm_row, resuming=resuming)
        run.writes.run()  # the confirm's attempt row, the try and the row's status with its event
    for call in run.after_commit:
        call()
    run.after_commit.clear()
    return outcome


def _locked_confirm(run: ChargeRun, attempt: AutopayChargeTry, *, confirm_row, resuming: bool) -> str:
    """Step 3, inside its transaction. Lock order, as in billing/payments/: the account, then this row (with the try
    and its payment), then the account's payable bills by primary key. The confirm is made while they are held, on
    purpose: the locks are what prevent a double charge. A guest payment (account lock) or an offline payment (bill
    locks) for this bill waits until our charge is recorded, and we re-check the bill under them before confirming."""
    account_lock(attempt.payment.account_id, read=False)
    attempt = _tries_locked().get(pk=attempt.pk)
    return _confirm_locked(run, attempt, bills=None, confirm_row=confirm_row, resuming=resuming)


def _tries_locked():
    """Tries to lock with their rows and payments (the second lock of step 3, after the account's)."""
    return AutopayChargeTry.objects.select_for_update(of=("self", "charge", "payment")).select_related(
        "charge__enrollment", "payment"
    )


def _confirm_locked(run, attempt: AutopayChargeTry, *, bills: list[Bill] | None, confirm_row, resuming: bool) -> str:
    """Step 3 under the account's lock and the try's: lock the account's payable bills (unless the caller holds them
    already: `bills`, this transaction's, in primary-key order), re-check, confirm and record."""
    charge, payment = attempt.charge, attempt.payment
    enrollment_now, charge.enrollment, charge.account = charge.enrollment, run.enrollment, run.account
    if charge.status != Status.CHARGING or attempt.outcome != Outcome.PENDING:
        return charge.status
    if bills is None:
        bills = payable_bills_lock(account_id=payment.account_id)
    bill = next((b for b in bills if b.pk == charge.bill_id), None)
    if bill is None:  # paid or voided since step 1: it is not among the payable bills
        bill = Bill.objects.select_for_update().get(pk=charge.bill_id)
    charge.bill = bill
    return _confirm_and_record(
        run, charge=charge, bill=bill, bills=bills, payment=payment, attempt=attempt, confirm_row=confirm_row,
        enrollment=enrollment_now, resuming=resuming,
    )  # fmt: skip


def _intent_create(run: ChargeRun, attempt: AutopayChargeTry, *, writes: WriteBatch) -> IntentResult | None:
    """Step 2 for one try: create its intent, unconfirmed, queuing the call's row and the intent id on `writes`.
    None when the gateway failed (the call's row, saved at once, says why; nothing was confirmed)."""
    payment, card, gateway = attempt.payment, attempt.payment_method, gateway_api.get_gateway()
    try:
        intent = payment_gateway_call(
            payment=payment, kind=PaymentAttempt.Kind.CREATE, amount=payment.amount, reference="-",
            idempotency_key=payment.idempotency_key, attempt=_fresh(run.create_row, payment), writes=writes,
            call=lambda k: gateway.create_payment_intent(
                amount=payment.amount, currency=payment.currency, idempotency_key=k,
                customer=card.gateway_customer_id, payment_method=card.gateway_payment_method_id,
                metadata={"payment": str(payment.pk), "autopay_charge": str(run.charge_id),
                          "account": str(payment.account_id)},
                payment_method_types=[card.kind] if card.is_bank_account else None,
                mandate=payment.mandate.gateway_mandate_id if payment.mandate_id else None,
            ),
        )  # fmt: skip
    except GatewayError:
        return None
    payment.gateway_payment_id = intent.id
    writes.update([payment], ["gateway_payment_id", "updated_at"])
    return intent


def _fresh(row: PaymentAttempt | None, payment: Payment) -> PaymentAttempt | None:
    """Step 1's row for this payment, if it was written in this run and not used yet."""
    if row is not None and row.payment_id == payment.pk and row.outcome == PaymentAttempt.Outcome.PENDING:
        row.gateway_reference = payment.gateway_payment_id or ""
        return row
    return None


def _confirm_and_record(run, *, charge, bill, bills, payment, attempt, confirm_row, enrollment, resuming) -> str:
    intent: IntentResult | None = None
    if resuming or payment.status != Payment.Status.PENDING:
        # Asked under the locks: what we do next (confirm, or record) depends on this answer staying true.
        try:
            intent = payment_intent_retrieve(payment, source="autopay")
        except GatewayError:
            return "gateway_error"
        if intent.status != IntentStatus.REQUIRES_CONFIRMATION:
            # The confirm reached the gateway but its worker died before recording: complete its row from the intent.
            PaymentAttempt.objects.filter(
                payment=payment, kind=PaymentAttempt.Kind.CONFIRM, outcome=PaymentAttempt.Outcome.PENDING
            ).update(
                outcome=intent_outcome(intent),
                message="outcome read back from the gateway after a lost worker",
                decline_code=(intent.decline_code or intent.error_code or "")[:64],
            )
        payment_sync(payment=payment, intent=intent, source="autopay", bills=bills)
    if payment.status == Payment.Status.PENDING and (
        intent is None or intent.status in (IntentStatus.REQUIRES_CONFIRMATION, IntentStatus.REQUIRES_PAYMENT_METHOD)
    ):
        stop = _stop_reason(charge, bill, enrollment)
        if stop or _owed(charge, bill) < payment.amount:
            return _try_abandon(run, charge=charge, payment=payment, attempt=attempt, stop=stop)
        try:
            intent = payment_confirm_off_session(payment, attempt=confirm_row, writes=run.writes)
        except PaymentDeclined as declined:
            if payment.status in Payment.IN_FLIGHT_STATUSES:
                payment_status_move(
                    payment=payment, to=Payment.Status.FAILED, message=f"autopay declined: {declined.code}"
                )
            return charge_declined(charge, bill, attempt, code=declined.code, decline_code=declined.decline_code)
        except GatewayError:
            # Did it charge? Unknown: the row stays charging, and the resumed run asks the gateway.
            logger.warning("autopay charge %s: confirm failed, will resume", charge.pk, exc_info=True)
            return "gateway_error"
        payment_sync(
            payment=payment, intent=intent, source="autopay", bills=bills, writes=run.writes if run.batched else None
        )
    return _after_sync(run, charge=charge, bill=bill, payment=payment, attempt=attempt, intent=intent)


def _after_sync(run, *, charge, bill, payment, attempt, intent: IntentResult | None) -> str:
    if payment.status == Payment.Status.SUCCEEDED:
        attempt.outcome = Outcome.SUCCEEDED
        run.writes.update([attempt], ["outcome"])
        charge_status_move(charge, Status.SUCCEEDED, payment=payment, next_attempt_at=None, reason="",
                           message=f"paid by {payment.confirmation_number} ({attempt.method_role} card)",
                           writes=run.writes)  # fmt: skip
        return charge.status
    if payment.status == Payment.Status.REQUIRES_ACTION:
        # Off-session, the bank wants the payer: this intent can never complete behind their back. It is recorded
        # as cancelled now and cancelled at the gateway after commit (no lock is needed for that); the payer is
        # asked to pay on-session with the pay link.
        payment_status_move(payment=payment, to=Payment.Status.CANCELED, message="autopay: authentication required")
        run.after_commit.append(lambda: _intent_cancel_quietly(payment))
        return charge_declined(charge, bill, attempt, code="authentication_required", decline_code=None)
    if payment.status == Payment.Status.FAILED:
        code = (intent.error_code if intent else None) or "card_declined"
        return charge_declined(charge, bill, attempt, code=code, decline_code=intent.decline_code if intent else None)
    if payment.status == Payment.Status.CANCELED:
        return charge_declined(charge, bill, attempt, code="processing_error", decline_code=None)
    if payment.is_bank_debit and payment.status == Payment.Status.PROCESSING:
        # A bank debit counts as paid while it processes (docs/payments.md); a return reopens this row (dunning).
        attempt.outcome = Outcome.SUCCEEDED
        attempt.save(update_fields=["outcome"])
        charge_status_move(charge, Status.SUCCEEDED, payment=payment, next_attempt_at=None, reason="",
                           message=f"debited by {payment.confirmation_number}, processing at the bank")  # fmt: skip
        return charge.status
    return charge.status  # processing: money is moving; the row stays charging and is resumed later


def _try_abandon(run, *, charge, payment, attempt, stop: str) -> str:
    """The bill was paid (or changed) between step 1 and the confirm: charge nothing. The unconfirmed intent is
    cancelled at the gateway after commit (never confirmed, so never charged, whether or not that call works)."""
    PaymentAttempt.objects.filter(
        payment=payment, kind=PaymentAttempt.Kind.CONFIRM, outcome=PaymentAttempt.Outcome.PENDING
    ).update(outcome=PaymentAttempt.Outcome.CANCELED, message="not sent: the bill changed before the charge")
    payment_status_move(
        payment=payment, to=Payment.Status.CANCELED, message=f"autopay: not charged ({stop or 'amount'})"
    )
    run.after_commit.append(lambda: _intent_cancel_quietly(payment))
    attempt.outcome = Outcome.CANCELLED
    attempt.save(update_fields=["outcome"])
    if stop:
        charge_status_move(charge, Status.CANCELLED, reason=stop, next_attempt_at=None, message=stop)
        return charge.status
    # Partly paid another way: this attempt is void; a fresh attempt for the new balance starts at once.
    charge_status_move(charge, Status.RETRY_SCHEDULED, next_attempt_at=timezone.now(), message="balance changed")
    return charge.status


def _intent_cancel_quietly(payment: Payment) -> None:
    try:
        payment_intent_cancel(payment=payment, amount=payment.amount)
    except GatewayError:
        # Never confirmed, so never charged; the intent expires at the gateway on its own.
        logger.warning("autopay: intent %s of payment %s not cancelled", payment.gateway_payment_id, payment.pk)
