"""Importing a bank statement and matching its lines (docs/bank-transfers.md).

1. `statement_store` reads the whole file (nothing is stored if any line is wrong: StatementFileError lists them)
   and inserts its lines under their unique key (biller, entry key) with ON CONFLICT DO NOTHING, in one transaction:
   a line that an earlier or overlapping statement brought is not inserted again, and is counted as already seen.
   Two imports of the same file at once: the second insert waits for the first and then finds every key taken.
2. `statement_match` matches the statement's new lines in chunks, each chunk in one transaction with a fixed number
   of queries (its lines claimed under their row locks, its credits applied through the payment core's batch entry,
   the lines' outcomes and history written in one statement each), saving progress after each chunk. It only ever
   picks lines still `new`, so a run that was interrupted is resumed by running it again, and two runs at once never
   match a line twice (and the payment core's key on the bank entry would refuse it anyway). On PostgreSQL one run
   matches its chunks on STATEMENT_MATCH_CONNECTIONS connections at once, as that many runs would.
3. The report counts the statement's lines by what happened to them, with money totals.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import datetime, time
from collections.abc import Callable

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection, connections, transaction
from django.db.models import Count, F, Q, Sum, Value
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.bills.selectors import account_balance
from billing.bulk import row_new, rows_insert, rows_read, rows_update
from billing.errors import ApplicationError
from billing.events import event_new, event_record, status_move, status_set, transition_check
from billing.models import BankStatement, Biller, BillingEvent, CustomerAccount, StatementLine
from billing.money import format_money
from billing.payments.transfers import (
    BankTransfer,
    bank_entry_key,
    payment_bank_transfer_return,
    payment_record_bank_transfers,
)
from billing.references import Found, references_find

from .formats import CREDIT, ParsedLine, ParsedStatement, statement_parse

logger = logging.getLogger(__name__)

CHUNK_SIZE = 500


# --- Storing ---------------------------------------------------------------------------------------------------------


def _line_row(*, biller: Biller, statement: BankStatement, line: ParsedLine) -> StatementLine:
    return row_new(
        StatementLine, biller_id=biller.pk, statement_id=statement.pk, entry_key=line.entry_key[:200],
        line_number=line.line_number, booking_date=line.booking_date, direction=line.direction, amount=line.amount,
        currency=line.currency,
        bank_transaction_id=line.bank_transaction_id[:140], end_to_end_id=line.end_to_end_id[:140],
        remittance=line.remittance, counterparty_name=line.counterparty_name[:200],
        counterparty_account=line.counterparty_account[:64], is_return=line.is_return,
    )  # fmt: skip


def _unique_in_file(parsed: ParsedStatement) -> tuple[list[ParsedLine], int]:
    """The file's lines with repeated keys dropped (a bank repeating an entry in one file): (lines, repeats)."""
    seen: dict[str, ParsedLine] = {}
    for line in parsed.lines:
        seen.setdefault(line.entry_key[:200], line)
    return list(seen.values()), len(parsed.lines) - len(seen)


def statement_store(*, biller: Biller, filename: str, content: bytes, actor=None) -> BankStatement:
    """Read the file (raises StatementFileError, storing nothing) and store it with its new lines, waiting to be
    matched."""
    parsed = statement_parse(content)
    lines, repeats = _unique_in_file(parsed)
    with transaction.atomic():
        statement = BankStatement(
            biller=biller, filename=filename[:255], sha256=hashlib.sha256(content).hexdigest(), format=parsed.format,
            statement_id=parsed.statement_id[:140], bank_account=parsed.bank_account[:64],
            total_lines=len(parsed.lines), created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )  # fmt: skip
        statement.file.save(filename, ContentFile(content), save=False)
        statement.save()
        rows_insert([_line_row(biller=biller, statement=statement, line=line) for line in lines], ignore_conflicts=True)
        inserted = StatementLine.objects.filter(statement=statement).count()
        statement.report = {"duplicate": len(lines) - inserted + repeats}
        statement.save(update_fields=["report"])
    return statement


# --- Matching --------------------------------------------------------------------------------------------------------


def statement_match(*, statement: BankStatement, progress: Callable[[int], None] | None = None) -> BankStatement:
    """Match the statement's lines that are still new, chunk by chunk, each chunk in one transaction with a fixed
    number of queries (`statement_chunk_match`); then store the report. Safe to run again (it resumes) and
    concurrently (a chunk claims its lines under their row locks, skipping lines another run holds).

    On PostgreSQL, outside a caller's transaction, the chunks are matched on STATEMENT_MATCH_CONNECTIONS connections
    at once (threads of this process, each with its own connection, as concurrent runs would be): while one
    connection's chunk is in the database (its statements, its commit's foreign-key checks), another's is built in
    Python. Inside a caller's transaction, or on SQLite (one writer), one connection does it all."""
    if statement.status != BankStatement.Status.RUNNING:  # else another run is at it: help it, each line once
        transition_check(statement, BankStatement.Status.RUNNING, error=lambda: "This statement was rejected.")
        BankStatement.objects.filter(pk=statement.pk).update(status=BankStatement.Status.RUNNING)
    biller = statement.biller
    new = Q(status=StatementLine.Status.NEW)
    counts = StatementLine.objects.filter(statement=statement).aggregate(
        done=Count("pk", filter=~new), left=Count("pk", filter=new)
    )
    run = _MatchRun(statement=statement, biller=biller, done=counts["done"])
    helpers = []
    if counts["left"] > CHUNK_SIZE and connection.vendor == "postgresql" and not connection.in_atomic_block:
        helpers = [
            threading.Thread(target=run.helper, daemon=True) for _ in range(settings.STATEMENT_MATCH_CONNECTIONS - 1)
        ]
    for helper in helpers:
        helper.start()
    try:
        run.chunks(progress)
    finally:
        if helpers:
            run.stop.set()  # when this connection found nothing left, or failed: the helpers end after their chunk
            for helper in helpers:
                helper.join()
    if run.errors:
        raise run.errors[0]
    statement.refresh_from_db()
    statement.report = {**statement_report(statement=statement), "duplicate": statement.report.get("duplicate", 0)}
    statement.processed_lines = statement.lines.count()
    statement.finished_at = timezone.now()
    fields = ["report", "processed_lines", "finished_at"]
    if statement.status == BankStatement.Status.RUNNING:
        status_move(
            statement, BankStatement.Status.SUCCEEDED, error=lambda: "The statement cannot be finished.",
            update_fields=["status", *fields],
        )  # fmt: skip
    else:  # a concurrent run finished it first; the report is the same
        statement.save(update_fields=fields)
    return statement


class _MatchRun:
    """One `statement_match` run's chunk loop, run by this thread and by its helper threads (each on its own
    connection): each claims the next new lines no other holds, so every line is matched once."""

    def __init__(self, *, statement: BankStatement, biller: Biller, done: int):
        self.statement, self.biller, self.done = statement, biller, done
        self.lock, self.stop, self.errors = threading.Lock(), threading.Event(), []

    def chunks(self, progress: Callable[[int], None] | None = None) -> None:
        last_pk = 0
        while not self.errors:
            claimed, returns = statement_chunk_match(
                statement=self.statement, biller=self.biller, after_pk=last_pk, size=CHUNK_SIZE
            )
            if not claimed:
                break
            for line_id in returns:  # each in its own transaction, its line locked first, as staff's decisions lock
                statement_line_match(line_id=line_id, biller=self.biller)
            last_pk = claimed[-1]
            with self.lock:
                self.done += len(claimed)
                done = self.done
            # Autocommit, seen at once; never backwards, whichever connection writes last.
            BankStatement.objects.filter(pk=self.statement.pk).update(
                processed_lines=Greatest(F("processed_lines"), Value(done))
            )
            if progress:
                progress(done)
            if self.stop.is_set():
                break

    def helper(self) -> None:
        try:
            self.chunks()
        except Exception as exc:  # re-raised by the run's own thread once every helper has ended
            self.errors.append(exc)
        finally:
            connections.close_all()  # this thread's connection


@transaction.atomic
def statement_chunk_match(
    *, statement: BankStatement, biller: Biller, after_pk: int = 0, size: int = CHUNK_SIZE
) -> tuple[list[int], list[int]]:
    """Claim the statement's next `size` new lines after `after_pk` (row locks, skipping lines another run holds)
    and match them, all in this transaction: it commits the chunk's payments and the lines' outcomes together, so
    a crash loses nothing and the next run picks up the lines still new. Returns the claimed lines' ids, and those
    of the returns among them, left new for the caller to match one by one after this commits: a return locks the
    line it returns, and taking that lock while this chunk holds accounts would invert the order staff's assigning
    takes them in (line, then account)."""
    lines = rows_read(
        StatementLine.objects.select_for_update(skip_locked=True)
        .filter(statement=statement, status=StatementLine.Status.NEW, pk__gt=after_pk)
        .order_by("pk")[:size],
        MATCH_FIELDS,
    )
    returns = [line.pk for line in lines if line.direction != CREDIT and line.is_return]
    statement_lines_match(lines=[line for line in lines if line.pk not in returns], biller=biller)
    return [line.pk for line in lines], returns


@transaction.atomic
def statement_line_match(*, line_id: int, biller: Biller) -> StatementLine | None:
    """Match one new line (a chunk of one). None if another run has it or it was matched already."""
    line = StatementLine.objects.select_for_update(skip_locked=True).filter(pk=line_id).first()
    if line is None or line.status != StatementLine.Status.NEW:
        return None
    statement_lines_match(lines=[line], biller=biller)
    return line


def _references(line: StatementLine, biller: Biller) -> list[Found]:
    numeric_prefix = biller.bank_reference_prefix if biller.bank_reference_scheme == "numeric" else None
    return references_find(
        f"{line.remittance} {line.end_to_end_id}",
        prefix=biller.bank_reference_prefix if biller.bank_reference_scheme == "rf" else "",
        numeric_prefix=numeric_prefix,
    )


# What matching reads of a line (and writes back, `LINE_FIELDS`): not its statement, number, payer's account or
# timestamps (`updated_at` is set when its status moves).
MATCH_FIELDS = ["biller_id", "entry_key", "booking_date", "direction", "amount", "currency", "bank_transaction_id",
                "end_to_end_id", "remittance", "counterparty_name", "is_return", "status", "note", "reference",
                "account_id", "payment_id", "amount_applied", "amount_credited", "outcome", "decided_by_id",
                "decided_at"]  # fmt: skip
LINE_FIELDS = ["status", "note", "reference", "account", "payment", "amount_applied", "amount_credited", "outcome",
               "decided_by", "decided_at", "updated_at"]  # fmt: skip


def statement_lines_match(*, lines: list[StatementLine], biller: Biller) -> None:
    """Match new lines, locked by the caller in its transaction, with a fixed number of queries however many: a
    credit with a valid reference to this biller's account is applied (all of them through one
    `payment_record_bank_transfers`); other credits wait for staff, with the reason; debits are ignored; a return
    reverses the transfer it returns (after the other lines, one by one: returns are rare; `statement_chunk_match`
    leaves them to their own transactions). The lines' outcomes are written in one UPDATE (`rows_update`) and their
    history in one INSERT (`rows_insert`)."""
    events: list[BillingEvent] = []
    decided: list[StatementLine] = []
    returns: list[StatementLine] = []
    searched: list[tuple[StatementLine, list[Found]]] = []
    for line in lines:
        if line.direction != CREDIT:
            if line.is_return:
                returns.append(line)
            else:
                decided.append(_line_set(line, StatementLine.Status.IGNORED, note=_("Money out, not a payment."),
                                         events=events))  # fmt: skip
        elif line.currency != biller.currency:
            note = _("In %(currency)s; bills are in %(bills)s.") % {"currency": line.currency, "bills": biller.currency}
            decided.append(_line_set(line, StatementLine.Status.UNMATCHED, note=note, events=events))
        else:
            searched.append((line, _references(line, biller)))
    named = {f.account_id for _line, found in searched for f in found if f.valid}
    accounts = CustomerAccount.objects.filter(pk__any_of=named).order_by()
    owner = dict(accounts.values_list("pk", "biller_id")) if named else {}
    to_apply: list[tuple[StatementLine, int, str]] = []
    for line, found in searched:
        valid = [f for f in found if f.valid]
        ours = next((f for f in valid if owner.get(f.account_id) == biller.pk), None)
        if ours is not None:
            to_apply.append((line, ours.account_id, ours.reference))
            continue
        if valid and any(f.account_id in owner for f in valid):
            note = _("The reference is another biller's account; not applied.")
        elif valid:
            note = _("The reference %(reference)s names no account.") % {"reference": valid[0].reference}
        elif found:
            note = _("The reference %(reference)s fails its check digit (a typo?).") % {"reference": found[0].reference}
        else:
            note = _("No reference found.")
        line.reference = (valid or found)[0].reference if found else ""
        decided.append(_line_set(line, StatementLine.Status.UNMATCHED, note=note, events=events))
    decided.extend(_lines_apply(items=to_apply, events=events))
    _lines_save(decided, events)
    for line in returns:
        _return_match(line=line, biller=biller)


def _lines_apply(*, items: list[tuple[StatementLine, int, str]], events: list, actor=None) -> list[StatementLine]:
    """Apply (line, account id, reference) through the payment core in one batch; set each line's outcome."""
    if not items:
        return []
    results = payment_record_bank_transfers(
        transfers=[
            BankTransfer(
                account_id=account_id, amount=line.amount, currency=line.currency,
                key=bank_entry_key(kind="transfer", biller_id=line.biller_id, entry_key=line.entry_key),
                received_at=timezone.make_aware(datetime.combine(line.booking_date, time.min)),
                reference=line.bank_transaction_id or reference, payer_name=line.counterparty_name,
            )  # fmt: skip
            for line, account_id, reference in items
        ],
        actor=actor,
    )
    for (line, account_id, reference), result in zip(items, results):
        line.account_id, line.payment, line.reference = account_id, result.payment, reference
        line.amount_applied, line.amount_credited = result.applied, result.credited
        if result.credited:
            line.outcome = StatementLine.Outcome.OVER
        elif result.created and line.amount < result.owed:
            line.outcome = StatementLine.Outcome.PARTIAL
        else:
            line.outcome = StatementLine.Outcome.EXACT
        _line_set(line, StatementLine.Status.APPLIED, note=line.note, events=events, actor=actor)
    return [line for line, _account_id, _reference in items]


def _return_match(*, line: StatementLine, biller: Biller) -> StatementLine:
    """Find the transfer this return sends back: same biller, a credit of the same amount, by end-to-end id or else
    by the reference in the text, newest first, not yet returned."""
    candidates = StatementLine.objects.select_for_update().filter(
        biller=biller, direction=CREDIT, amount=line.amount,
        status__in=[StatementLine.Status.APPLIED, StatementLine.Status.UNMATCHED],
    )  # fmt: skip
    original = None
    if line.end_to_end_id:
        original = candidates.filter(end_to_end_id=line.end_to_end_id).order_by("-booking_date", "-pk").first()
    if original is None:
        refs = [f.reference for f in _references(line, biller) if f.valid]
        if refs:
            original = candidates.filter(reference__in=refs).order_by("-booking_date", "-pk").first()
    if original is None:
        return _line_move(line, StatementLine.Status.IGNORED, note=_("A return of a transfer we never applied."))
    reason = _("Returned by the bank: %(text)s") % {"text": line.remittance or line.bank_transaction_id}
    if original.status == StatementLine.Status.APPLIED:
        payment_bank_transfer_return(
            payment=original.payment, amount=line.amount,
            key=bank_entry_key(kind="return", biller_id=biller.pk, entry_key=line.entry_key), reason=reason,
        )  # fmt: skip
    _line_move(original, StatementLine.Status.RETURNED, note=reason)
    line.reverses, line.account, line.payment = original, original.account, original.payment
    return _line_move(line, StatementLine.Status.RETURN, note=reason, fields=["reverses", "account", "payment"])


def _line_set(line: StatementLine, to: str, *, note: str, events: list, actor=None) -> StatementLine:
    """The checked status move of a (locked) line, in memory, with its history row appended to `events`; the caller
    writes both (`_lines_save`)."""
    changes = {"note": note[:500], "updated_at": timezone.now()}
    if actor is not None:
        changes |= {"decided_by": actor if getattr(actor, "is_authenticated", False) else None,
                    "decided_at": timezone.now()}  # fmt: skip
    from_status = status_set(
        line, to,
        error=lambda: _("A line that is %(from)s cannot become %(to)s.")
        % {"from": StatementLine.Status(line.status).label.lower(), "to": StatementLine.Status(to).label.lower()},
        changes=changes,
    )  # fmt: skip
    events.append(event_new(
        kind=BillingEvent.Kind.STATEMENT_LINE, statement_line=line, payment=line.payment, from_status=from_status,
        to_status=to, amount=line.amount, currency=line.currency, actor=actor,
        message=note or (f"payment {line.payment.confirmation_number}" if line.payment else ""),
    ))  # fmt: skip
    return line


def _lines_save(lines: list[StatementLine], events: list) -> None:
    if lines:
        rows_update(lines, LINE_FIELDS)
    rows_insert(events)


def _line_move(line: StatementLine, to: str, *, note: str, fields: list[str] | None = None, actor=None):
    """One line's status move, written at once (returns, staff decisions)."""
    events: list[BillingEvent] = []
    _line_set(line, to, note=note, events=events, actor=actor)
    decided = ["decided_by", "decided_at"] if actor is not None else []
    line.save(update_fields=["status", "note", "updated_at", *(fields or []), *decided])
    BillingEvent.objects.bulk_create(events)
    return line


# --- Staff decisions on the unmatched queue ----------------------------------------------------------------------------


@transaction.atomic
def statement_line_assign(*, line: StatementLine, account: CustomerAccount, actor) -> StatementLine:
    """Staff say whose an unmatched credit is: it is applied to that account like a matched one."""
    line = StatementLine.objects.select_for_update().get(pk=line.pk)
    if line.status != StatementLine.Status.UNMATCHED or line.direction != CREDIT:
        raise ApplicationError(_("Only a line waiting for staff can be assigned."))
    if account.biller_id != line.biller_id:
        raise ApplicationError(_("That account belongs to another biller."))
    line.note = _("Assigned by staff.")
    events: list[BillingEvent] = []
    _lines_apply(items=[(line, account.pk, account.bank_reference)], events=events, actor=actor)
    _lines_save([line], events)
    event_record(
        kind=BillingEvent.Kind.PAYMENT_RECORDED, payment=line.payment, amount=line.amount, currency=line.currency,
        message=f"statement line {line.entry_key} assigned by staff", actor=actor,
    )  # fmt: skip
    return line


@transaction.atomic
def statement_line_dismiss(*, line: StatementLine, actor, note: str = "") -> StatementLine:
    """Staff say an unmatched credit is not a payment for this biller (it stays listed as not ours)."""
    line = StatementLine.objects.select_for_update().get(pk=line.pk)
    return _line_move(line, StatementLine.Status.NOT_OURS, note=note or _("Marked not ours by staff."), actor=actor)


@transaction.atomic
def statement_line_reopen(*, line: StatementLine, actor, note: str = "") -> StatementLine:
    """Staff take back a "not ours": the line waits in the queue again (its history keeps both decisions)."""
    line = StatementLine.objects.select_for_update().get(pk=line.pk)
    if line.status != StatementLine.Status.NOT_OURS:
        raise ApplicationError(_("Only a line marked not ours can be put back in the queue."))
    return _line_move(line, StatementLine.Status.UNMATCHED, note=note or _("Put back in the queue by staff."),
                      actor=actor)  # fmt: skip


# --- The report ------------------------------------------------------------------------------------------------------

REPORT_KEYS = ("read", "matched", "partial", "over", "unmatched", "duplicate", "reversed", "ignored")


def statement_report(*, statement: BankStatement) -> dict:
    """Counts and money (minor units) by what happened to the statement's own lines. Lines already brought by an
    earlier statement are counted under `duplicate` only."""
    rows = (
        StatementLine.objects.filter(statement=statement)
        .values("status", "outcome")
        .annotate(n=Count("pk"), money=Sum("amount"), applied=Sum("amount_applied"), credited=Sum("amount_credited"))
    )
    report = {key: 0 for key in REPORT_KEYS}
    money = {key: 0 for key in ("matched", "partial", "over", "unmatched", "reversed", "ignored", "credited")}
    S = StatementLine.Status
    for row in rows:
        status, outcome, n, amount = row["status"], row["outcome"], row["n"], row["money"] or 0
        if status in (S.APPLIED, S.RETURNED) and outcome:
            key = {"exact": "matched", "partial": "partial", "over": "over"}[outcome]
            report[key] += n
            money[key] += amount
            money["credited"] += row["credited"] or 0
        elif status in (S.UNMATCHED, S.NOT_OURS, S.NEW):
            report["unmatched"] += n
            money["unmatched"] += amount
        elif status == S.RETURN:
            report["reversed"] += n
            money["reversed"] += amount
        else:
            report["ignored"] += n
            money["ignored"] += amount
    report["read"] = statement.total_lines
    report["duplicate"] = statement.report.get("duplicate", 0)
    report["money"] = money
    report["currency"] = statement.biller.currency
    return report


def report_lines(report: dict) -> list[str]:
    """The report as text lines for the command and the admin, ending with the machine-readable summary."""
    currency = report.get("currency") or "USD"
    money = report.get("money", {})

    def amount(key):
        return format_money(money.get(key, 0), currency)

    return [
        f"lines read: {report['read']}",
        f"matched (paid what was owed): {report['matched']} ({amount('matched')})",
        f"partial: {report['partial']} ({amount('partial')})",
        f"over (credit held {amount('credited')}): {report['over']} ({amount('over')})",
        f"unmatched (waiting for staff): {report['unmatched']} ({amount('unmatched')})",
        f"already seen: {report['duplicate']}",
        f"returns reversed: {report['reversed']} ({amount('reversed')})",
        f"ignored (money out): {report['ignored']} ({amount('ignored')})",
        "matched={} unmatched={} duplicate={}".format(
            report["matched"] + report["partial"] + report["over"], report["unmatched"], report["duplicate"]
        ),
    ]


# --- Dry run -----------------------------------------------------------------------------------------------------------


def statement_preview(*, biller: Biller, content: bytes) -> dict:
    """What importing would do, writing nothing (raises StatementFileError like a real import)."""
    parsed = statement_parse(content)
    lines, repeats = _unique_in_file(parsed)
    seen = set(
        StatementLine.objects.filter(biller=biller, entry_key__in=[line.entry_key[:200] for line in lines])
        .values_list("entry_key", flat=True)
    )
    report = {key: 0 for key in REPORT_KEYS}
    money = {key: 0 for key in ("matched", "partial", "over", "unmatched", "reversed", "ignored", "credited")}
    report["read"], report["duplicate"] = len(parsed.lines), len(seen) + repeats
    fresh = [line for line in lines if line.entry_key[:200] not in seen]
    probe = StatementLine(biller=biller)
    owed_by_account: dict[int, int] = {}
    for line in fresh:
        if line.direction != CREDIT:
            key = "reversed" if line.is_return else "ignored"
        else:
            probe.remittance, probe.end_to_end_id = line.remittance, line.end_to_end_id
            valid = [f.account_id for f in _references(probe, biller) if f.valid]
            account = (
                CustomerAccount.objects.filter(pk__in=valid, biller=biller).order_by("pk").first()
                if valid and line.currency == biller.currency
                else None
            )
            if account is None:
                key = "unmatched"
            else:
                owed = owed_by_account.setdefault(account.pk, account_balance(account=account))
                key = "over" if line.amount > owed else "partial" if line.amount < owed else "matched"
                if key == "over":
                    money["credited"] += line.amount - owed
                owed_by_account[account.pk] = max(0, owed - line.amount)
        report[key] += 1
        money[key] += line.amount
    report["money"], report["currency"] = money, biller.currency
    return report


def statement_submit(*, biller: Biller, filename: str, content: bytes, actor=None) -> BankStatement:
    """Store an uploaded statement and match it: at once when it is small, else by a worker after commit (the
    statement's page shows its progress)."""
    from .tasks import statement_match_task  # tasks import this module

    statement = statement_store(biller=biller, filename=filename, content=content, actor=actor)
    if statement.lines.count() <= settings.STATEMENT_MATCH_INLINE_LINES:
        return statement_match(statement=statement)
    statement_match_task.delay_on_commit(statement.pk)
    return statement
