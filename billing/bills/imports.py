"""Bill import from a CSV file: one row per bill line, rows with the same bill_number form one bill.

All or nothing. The first pass reads and checks every row, and looks up the accounts and bills that already exist,
one chunk at a time, saving progress after each chunk. If anything is wrong, nothing is written and the report lists
every problem as (row as a spreadsheet numbers it, column, reason). Otherwise the second pass writes everything inside
one transaction, so a failure half-way leaves nothing behind. Progress is saved only by the first pass: an update made
inside the write transaction would stay invisible to the progress page until the very end anyway.

(biller, bill number) is the natural key. A bill already in the database with the same content is skipped, so importing
a file twice creates its bills once; one with different content is an error. Columns are documented in
docs/import-format.md; COLUMNS in csv_rows.py is the source of truth for what the code accepts.
"""

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..events import transition_check
from ..models import Bill, Biller, BillingEvent, BillLine, CustomerAccount, ImportBatch, normalize_postal_code
from ..money import format_money, validate_currency
from .csv_rows import (
    ACCOUNT_COLUMNS,
    CsvFile,
    ImportFileError,
    ParsedAccount,
    ParsedBill,
    RowError,
    RowParser,
    bill_import_file_read,
)
from .services import LineInput, bill_totals, bills_issued_announce

logger = logging.getLogger(__name__)


@dataclass
class ImportResult:
    total_rows: int = 0
    processed_rows: int = 0
    accounts_created: int = 0
    bills_created: int = 0
    bills_skipped: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class _StoredBill:
    account_number: str
    period_start: date
    period_end: date
    due_date: date
    currency: str
    lines: tuple[tuple[str, Decimal, int, int], ...]


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _bill_chunks(bills: list[ParsedBill], size: int) -> Iterator[list[ParsedBill]]:
    """Bills grouped so that each chunk holds about `size` lines (file rows), never splitting a bill."""
    chunk, lines = [], 0
    for bill in bills:
        chunk.append(bill)
        lines += len(bill.lines)
        if lines >= size:
            yield chunk
            chunk, lines = [], 0
    if chunk:
        yield chunk


def _same_name(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def bills_import(
    *,
    biller: Biller,
    csv_file: CsvFile,
    actor=None,
    batch: ImportBatch | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Check every row of `csv_file`; if all is well (and not dry_run), create the accounts and bills in one go.

    The result always carries the counts; with errors, the counts say what would have happened and nothing is
    written. Queries per chunk are fixed: existing accounts and bills are fetched by key sets, never row by row.
    """
    currency = validate_currency(biller.currency)
    parser = RowParser(currency)
    chunk_size = max(1, settings.BILL_IMPORT_CHUNK_SIZE)
    result = ImportResult(total_rows=csv_file.total_rows, errors=list(csv_file.errors))
    result.processed_rows = len(csv_file.errors)
    errors = result.errors

    accounts: dict[str, ParsedAccount] = {}
    bills: dict[str, ParsedBill] = {}
    stored_accounts: dict[str, tuple[int, str, str]] = {}  # number -> (pk, holder_name, postal_code)
    stored_bills: dict[str, _StoredBill] = {}

    # Pass 1: check, one chunk at a time.
    for chunk in _chunks(csv_file.rows, chunk_size):
        new_account_numbers, new_bill_numbers = [], []
        for row, values in chunk:
            account = parser.account(row, values, errors)
            bill_values = parser.bill(row, values, errors)
            line = parser.line(row, values, errors)
            if account is not None:
                number = account["account_number"]
                known = accounts.get(number)
                if known is None:
                    accounts[number] = ParsedAccount(number=number, row=row, values=account)
                    new_account_numbers.append(number)
                else:
                    for name in ACCOUNT_COLUMNS:
                        if account[name] != known.values[name]:
                            errors.append(
                                RowError(
                                    row,
                                    name,
                                    _("Account %(account)s has a different %(column)s on row %(row)s.")
                                    % {"account": number, "column": name, "row": known.row},
                                )
                            )
                            break
            bill = None
            if bill_values is not None:
                number = bill_values["bill_number"]
                bill = bills.get(number)
                if bill is None:
                    bill = bills[number] = ParsedBill(
                        number=number,
                        row=row,
                        account_number=(values.get("account_number") or "").strip(),
                        period_start=bill_values["period_start"],
                        period_end=bill_values["period_end"],
                        due_date=bill_values["due_date"],
                        issue=bill_values["issue"],
                    )
                    new_bill_numbers.append(number)
                else:
                    # A row whose account columns are wrong has been reported already; compare its bill columns only.
                    account_number = account["account_number"] if account else bill.account_number
                    conflict = _bill_row_conflict(bill, bill_values, account_number)
                    if conflict:
                        errors.append(
                            RowError(
                                row,
                                conflict,
                                _("Bill %(bill)s has a different %(column)s on row %(row)s.")
                                % {"bill": number, "column": conflict, "row": bill.row},
                            )
                        )
                        bill.broken = True
                        bill = None
            else:
                # The row's line belongs to a bill we cannot identify; mark the bill, if any, as incomplete.
                number = (values.get("bill_number") or "").strip()
                if number in bills:
                    bills[number].broken = True
            if bill is not None:
                if line is None or account is None:
                    bill.broken = True
                else:
                    bill.lines.append(line)
        stored_accounts.update(_stored_accounts(biller, new_account_numbers))
        stored_bills.update(_stored_bills(biller, new_bill_numbers))
        result.processed_rows += len(chunk)
        if progress:
            progress(result.processed_rows)

    # Whole-file checks against what is already stored.
    to_create: list[ParsedBill] = []
    for bill in bills.values():
        if bill.broken:
            continue
        stored = stored_bills.get(bill.number)
        if stored is None:
            to_create.append(bill)
            continue
        difference = _bill_difference(bill, stored)
        if difference:
            errors.append(RowError(bill.row, difference[0], difference[1]))
        else:
            result.bills_skipped += 1
    for number in dict.fromkeys(bill.account_number for bill in to_create):
        if number not in stored_accounts:
            result.accounts_created += 1
            continue
        account = accounts[number]
        _pk, holder_name, postal_code = stored_accounts[number]
        if not _same_name(account.values["holder_name"], holder_name):
            errors.append(
                RowError(
                    account.row,
                    "holder_name",
                    _("Account %(account)s already exists for “%(stored)s”. Check the account number.")
                    % {"account": number, "stored": holder_name},
                )
            )
        elif normalize_postal_code(account.values["postal_code"]) != normalize_postal_code(postal_code):
            errors.append(
                RowError(
                    account.row,
                    "postal_code",
                    _("Account %(account)s already exists with postal code %(stored)s. Check the account number.")
                    % {"account": number, "stored": postal_code},
                )
            )
    result.bills_created = len(to_create)

    column_order = {name: i for i, name in enumerate(csv_file.header)}
    errors.sort(key=lambda e: (e.row or 0, column_order.get(e.column, -1)))
    if errors or dry_run:
        return result

    # Pass 2: write everything, or nothing.
    account_ids = {number: pk for number, (pk, _name, _postal) in stored_accounts.items()}
    try:
        with transaction.atomic():
            for chunk in _bill_chunks(to_create, chunk_size):
                _write_chunk(
                    biller=biller, bills=chunk, accounts=accounts, account_ids=account_ids, actor=actor, batch=batch
                )
    except IntegrityError:
        logger.warning("Bill import for %s hit a unique key written meanwhile", biller.slug, exc_info=True)
        result.accounts_created = result.bills_created = result.bills_skipped = 0
        result.errors.append(
            RowError(
                None,
                "",
                _(
                    "Some of these accounts or bills were created by someone else while the file was being "
                    "imported. Nothing was imported; upload the file again."
                ),
            )
        )
    return result


def _bill_row_conflict(bill: ParsedBill, values: dict, account_number: str) -> str | None:
    """The first bill-level column on which a later row of a bill disagrees with its first row."""
    if account_number != bill.account_number:
        return "account_number"
    for name in ("period_start", "period_end", "due_date", "issue"):
        if values[name] != getattr(bill, name):
            return name
    return None


def _bill_difference(bill: ParsedBill, stored: _StoredBill) -> tuple[str, str] | None:
    """Why a bill in the file is not the one already stored under its number, as (column, reason); None if same."""
    exists = _("Bill %(bill)s already exists with a different %(what)s (%(stored)s).")
    if stored.account_number != bill.account_number:
        return "account_number", exists % {
            "bill": bill.number, "what": _("account"), "stored": stored.account_number
        }
    for name in ("period_start", "period_end", "due_date"):
        if getattr(stored, name) != getattr(bill, name):
            return name, exists % {"bill": bill.number, "what": name, "stored": getattr(stored, name).isoformat()}
    lines = tuple((line.description, line.quantity, line.amount, line.tax) for line in bill.lines)
    if stored.lines != lines:
        total = sum(amount + tax for _d, _q, amount, tax in stored.lines)
        return "bill_number", _(
            "Bill %(bill)s already exists with different lines (%(count)s lines, %(total)s in total)."
        ) % {"bill": bill.number, "count": len(stored.lines), "total": format_money(total, stored.currency)}
    return None


def _stored_accounts(biller: Biller, numbers: list[str]) -> dict[str, tuple[int, str, str]]:
    if not numbers:
        return {}
    rows = CustomerAccount.objects.filter(biller=biller, account_number__in=numbers).values_list(
        "account_number", "pk", "holder_name", "postal_code"
    )
    return {number: (pk, name, postal) for number, pk, name, postal in rows}


def _stored_bills(biller: Biller, numbers: list[str]) -> dict[str, _StoredBill]:
    if not numbers:
        return {}
    bills = list(
        Bill.objects.filter(biller=biller, number__in=numbers).values_list(
            "pk", "number", "account__account_number", "period_start", "period_end", "due_date", "currency"
        )
    )
    if not bills:
        return {}
    lines: dict[int, list] = {pk: [] for pk, *_rest in bills}
    for bill_id, description, quantity, amount, tax in (
        BillLine.objects.filter(bill_id__in=lines)
        .order_by("bill_id", "position", "pk")
        .values_list("bill_id", "description", "quantity", "amount", "tax_amount")
    ):
        lines[bill_id].append((description, quantity, amount, tax))
    return {
        number: _StoredBill(account, start, end, due, currency, tuple(lines[pk]))
        for pk, number, account, start, end, due, currency in bills
    }


def _unit_amount(amount: int, quantity: Decimal) -> int:
    return int((Decimal(amount) / quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _write_chunk(*, biller, bills: list[ParsedBill], accounts: dict[str, ParsedAccount], account_ids: dict, actor, batch):
    """Create one chunk's new accounts, bills, lines and history rows: a fixed number of bulk inserts."""
    actor = actor if getattr(actor, "is_authenticated", False) else None
    source = _("Imported from %(file)s") % {"file": batch.filename} if batch else _("Imported from a file")
    events: list[BillingEvent] = []

    new_accounts = [
        CustomerAccount(
            biller=biller,
            account_number=number,
            holder_name=accounts[number].values["holder_name"],
            postal_code=accounts[number].values["postal_code"],
            address_line1=accounts[number].values["address_line1"],
            address_line2=accounts[number].values["address_line2"],
            city=accounts[number].values["city"],
            region=accounts[number].values["region"],
            country=accounts[number].values["country"] or CustomerAccount._meta.get_field("country").default,
            email=accounts[number].values["email"],
            phone=accounts[number].values["phone"],
            import_batch=batch,
        )
        for number in dict.fromkeys(bill.account_number for bill in bills)
        if number not in account_ids
    ]
    if new_accounts:
        CustomerAccount.objects.bulk_create(new_accounts)
        for account in new_accounts:
            account_ids[account.account_number] = account.pk
            events.append(
                BillingEvent(kind=BillingEvent.Kind.IMPORTED, account=account, message=source[:500], actor=actor)
            )

    today = timezone.localdate()
    bill_rows, line_inputs = [], []
    for bill in bills:
        lines = [
            LineInput(
                description=line.description,
                amount=line.amount,
                quantity=line.quantity,
                unit_amount=_unit_amount(line.amount, line.quantity),
                tax_amount=line.tax,
                usage_unit=line.usage_unit,
                meter_start=line.meter_start,
                meter_end=line.meter_end,
            )
            for line in bill.lines
        ]
        totals = bill_totals(lines)
        if not bill.issue:
            status = Bill.Status.DRAFT
        else:
            status = Bill.Status.OPEN if totals.total else Bill.Status.PAID  # as bill_issue: nothing to pay
        bill_rows.append(
            Bill(
                biller=biller,
                account_id=account_ids[bill.account_number],
                number=bill.number,
                status=status,
                period_start=bill.period_start,
                period_end=bill.period_end,
                issue_date=today if bill.issue else None,
                due_date=bill.due_date,
                currency=biller.currency,
                subtotal=totals.subtotal,
                tax=totals.tax,
                total=totals.total,
                import_batch=batch,
            )
        )
        line_inputs.append(lines)
    Bill.objects.bulk_create(bill_rows)

    line_rows = []
    for bill, lines in zip(bill_rows, line_inputs, strict=True):
        line_rows.extend(line.as_row(bill=bill, position=position) for position, line in enumerate(lines))
        common = {"bill": bill, "account_id": bill.account_id, "actor": actor}
        events.append(
            BillingEvent(
                kind=BillingEvent.Kind.IMPORTED,
                to_status=Bill.Status.DRAFT,
                amount=bill.total,
                currency=bill.currency,
                message=source[:500],
                **common,
            )
        )
        if bill.status != Bill.Status.DRAFT:
            events.append(
                BillingEvent(
                    kind=BillingEvent.Kind.BILL_STATUS, from_status=Bill.Status.DRAFT, to_status=Bill.Status.OPEN,
                    **common,
                )
            )
        if bill.status == Bill.Status.PAID:
            events.append(
                BillingEvent(
                    kind=BillingEvent.Kind.BILL_STATUS, from_status=Bill.Status.OPEN, to_status=Bill.Status.PAID,
                    message=_("Nothing to pay."), **common,
                )
            )
    BillLine.objects.bulk_create(line_rows)
    BillingEvent.objects.bulk_create(events)
    bills_issued_announce(account_ids=[bill.account_id for bill in bill_rows if bill.status == Bill.Status.OPEN])


def bill_import_batch_create(*, biller: Biller, filename: str, content: bytes, actor=None) -> ImportBatch:
    """Check that the file can be read at all (raises ImportFileError if not), then store it as a waiting batch."""
    csv_file = bill_import_file_read(content=content)
    batch = ImportBatch(
        biller=biller,
        filename=filename[:255],
        sha256=hashlib.sha256(content).hexdigest(),
        total_rows=csv_file.total_rows,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    batch.file.save(filename, ContentFile(content), save=False)
    batch.save()
    return batch


def _import_batch_check(from_status: str, to: str) -> None:
    """ImportBatch.TRANSITIONS, checked before the conditional UPDATEs that move a batch (the UPDATE's filter is the
    lock: only one worker claims a waiting batch)."""
    transition_check(
        ImportBatch, to, from_status=from_status, error=lambda: f"A bill import cannot go from {from_status} to {to}."
    )


def bill_import_run(*, batch: ImportBatch) -> ImportBatch:
    """Run a waiting batch to the end and store its outcome. A batch that is not waiting is left alone, so a task
    delivered twice imports once."""
    _import_batch_check(ImportBatch.Status.PENDING, ImportBatch.Status.RUNNING)
    claimed = ImportBatch.objects.filter(pk=batch.pk, status=ImportBatch.Status.PENDING).update(
        status=ImportBatch.Status.RUNNING, processed_rows=0
    )
    batch.refresh_from_db()
    if not claimed:
        return batch

    def progress(processed: int) -> None:
        # Outside the write transaction, in autocommit: the progress page sees it at once.
        ImportBatch.objects.filter(pk=batch.pk).update(processed_rows=processed)

    try:
        with batch.file.open("rb") as handle:
            content = handle.read()
        try:
            csv_file = bill_import_file_read(content=content)
        except ImportFileError as exc:
            result = ImportResult(total_rows=batch.total_rows, errors=exc.errors)
        else:
            result = bills_import(
                biller=batch.biller, csv_file=csv_file, actor=batch.created_by, batch=batch, progress=progress
            )
    except Exception:
        logger.exception("Bill import batch %s failed", batch.pk)
        crashed = RowError(None, "", _("The import stopped because of an internal error. Nothing was imported."))
        _import_batch_check(ImportBatch.Status.RUNNING, ImportBatch.Status.FAILED)
        ImportBatch.objects.filter(pk=batch.pk).update(
            status=ImportBatch.Status.FAILED, finished_at=timezone.now(), errors=[crashed.as_dict()]
        )
        raise
    outcome = ImportBatch.Status.SUCCEEDED if result.ok else ImportBatch.Status.FAILED
    _import_batch_check(batch.status, outcome)
    batch.status = outcome
    batch.total_rows = result.total_rows
    batch.processed_rows = result.processed_rows
    # A rejected file created nothing, so its counts stay zero; the report is in `errors`.
    batch.accounts_created = result.accounts_created if result.ok else 0
    batch.bills_created = result.bills_created if result.ok else 0
    batch.bills_skipped = result.bills_skipped if result.ok else 0
    batch.errors = [error.as_dict() for error in result.errors]
    batch.finished_at = timezone.now()
    batch.save(
        update_fields=[
            "status", "total_rows", "processed_rows", "accounts_created", "bills_created", "bills_skipped",
            "errors", "finished_at",
        ]
    )
    return batch


def bill_import_submit(*, biller: Biller, filename: str, content: bytes, actor=None) -> ImportBatch:
    """Store an uploaded file and start importing it. A file of one chunk or less is imported straight away, so the
    clerk sees the outcome at once; anything bigger goes to a Celery worker once this transaction commits."""
    from .tasks import bill_import_run_task  # tasks import this module

    batch = bill_import_batch_create(biller=biller, filename=filename, content=content, actor=actor)
    if batch.total_rows <= settings.BILL_IMPORT_CHUNK_SIZE:
        return bill_import_run(batch=batch)
    bill_import_run_task.delay_on_commit(batch.pk)
    return batch
