"""Bill import from a CSV file: one row per bill line, rows with the same bill_number form one bill.

All or nothing. The first pass reads and checks every row, and looks up the accounts and bills that already exist,
one chunk at a time, saving progress after each chunk. If anything is wrong, nothing is written and the report lists
every problem as (row as a spreadsheet numbers it, column, reason). Otherwise the second pass writes everything inside
one transaction, so a failure half-way leaves nothing behind. Progress is saved only by the first pass: an update made
inside the write transaction would stay invisible to the progress page until the very end anyway.

(biller, bill number) is the natural key. A bill already in the database with the same content is skipped, so importing
a file twice creates its bills once; one with different content is an error. Columns are documented in
docs/import-format.md; COLUMNS below is the source of truth for what the code accepts.
"""

import csv
import hashlib
import io
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .errors import ApplicationError
from .models import Bill, Biller, BillingEvent, BillLine, CustomerAccount, ImportBatch, normalize_postal_code
from .money import currency_decimals, format_money, to_minor, validate_currency
from .bills.services import LineInput, bill_totals

logger = logging.getLogger(__name__)

ACCOUNT_COLUMNS = (
    "account_number",
    "holder_name",
    "postal_code",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "country",
    "email",
    "phone",
)
BILL_COLUMNS = ("bill_number", "period_start", "period_end", "due_date", "issue")
LINE_COLUMNS = ("description", "quantity", "amount", "tax")
COLUMNS = ACCOUNT_COLUMNS + BILL_COLUMNS + LINE_COLUMNS
REQUIRED_COLUMNS = frozenset(
    {
        "account_number",
        "holder_name",
        "postal_code",
        "bill_number",
        "period_start",
        "period_end",
        "due_date",
        "description",
        "amount",
    }
)
_MAX_LENGTHS = {
    **{name: CustomerAccount._meta.get_field(name).max_length for name in ACCOUNT_COLUMNS},
    "bill_number": Bill._meta.get_field("number").max_length,
    "description": BillLine._meta.get_field("description").max_length,
}
# The two account columns that say who the customer is. They must match an existing account, or the bill would
# land on somebody else's account because of a typo in the account number.
_IDENTITY_COLUMNS = ("holder_name", "postal_code")

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Digits and one decimal point only. money.to_minor drops commas as thousands separators, which would turn a
# European "12,50" into 1250.00, so an import refuses commas outright.
_AMOUNT_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}
_MAX_MINOR = 10**15  # far above any real bill, far below the 64-bit column limit even summed over many lines
_MAX_QUANTITY = Decimal(10) ** 11  # BillLine.quantity is 14 digits, 3 of them decimals


class ImportFileError(ApplicationError):
    """The file as a whole cannot be read: not UTF-8 text, empty, or a header that is missing required columns."""

    def __init__(self, message: str, *, errors: list["RowError"] | None = None):
        super().__init__(message)
        self.errors = errors or [RowError(row=None, column="", message=message)]


@dataclass(frozen=True)
class RowError:
    row: int | None  # as a spreadsheet numbers it: the header is row 1; None for the file as a whole
    column: str
    message: str

    def as_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "message": self.message}

    def __str__(self) -> str:
        where = _("row %(row)s") % {"row": self.row} if self.row else _("file")
        if self.column:
            where = f"{where}, {self.column}"
        return f"{where}: {self.message}"


@dataclass
class CsvFile:
    header: list[str]
    rows: list[tuple[int, dict[str, str]]]  # (spreadsheet row number, value by column)
    errors: list[RowError] = field(default_factory=list)  # rows that could not be split into the header's columns

    @property
    def total_rows(self) -> int:
        return len(self.rows) + len(self.errors)


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


@dataclass
class _Line:
    row: int
    description: str
    quantity: Decimal
    amount: int
    tax: int


@dataclass
class _Account:
    number: str
    row: int
    values: dict[str, str]


@dataclass
class _Bill:
    number: str
    row: int
    account_number: str
    period_start: date
    period_end: date
    due_date: date
    issue: bool
    lines: list[_Line] = field(default_factory=list)
    broken: bool = False  # one of its rows had an error, so its lines are incomplete


@dataclass(frozen=True)
class _StoredBill:
    account_number: str
    period_start: date
    period_end: date
    due_date: date
    currency: str
    lines: tuple[tuple[str, Decimal, int, int], ...]


def _header_key(name: str) -> str:
    # "Account Number", "account-number" and "account_number" all mean the same column.
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def bill_import_file_read(*, content: bytes) -> CsvFile:
    """Decode and split a CSV file. Raises ImportFileError when the file as a whole is unusable."""
    if not content.strip():
        raise ImportFileError(_("The file is empty."))
    if b"\x00" in content:
        raise ImportFileError(_("This is not a CSV file. Save the spreadsheet as “CSV UTF-8” and upload that."))
    try:
        text = content.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark; plain UTF-8 does not
    except UnicodeDecodeError:
        raise ImportFileError(
            _("The file is not UTF-8 text. In the spreadsheet, save it as “CSV UTF-8” and upload that.")
        ) from None
    # A spreadsheet numbers every record from 1, the header and blank rows included; a cell with line breaks in it
    # is still one row. csv.reader yields one list per record, an empty one for a blank line, so counting its
    # records gives the row numbers a clerk sees.
    records = enumerate(csv.reader(io.StringIO(text, newline="")), start=1)
    line = 0
    try:
        header_row = None
        for line, values in records:
            if any(cell.strip() for cell in values):
                header_row = values
                break
        if header_row is None:
            raise ImportFileError(_("The file is empty."))
        header = [_header_key(cell) for cell in header_row]
        _header_check(header, header_row)
        rows: list[tuple[int, dict[str, str]]] = []
        errors: list[RowError] = []
        width = len(header)
        for row_number, values in records:
            line = row_number
            if not any(cell.strip() for cell in values):
                continue
            if len(values) > width and any(cell.strip() for cell in values[width:]):
                errors.append(
                    RowError(
                        row_number,
                        "",
                        _("This row has %(found)s values but the header has %(expected)s columns.")
                        % {"found": len(values), "expected": width},
                    )
                )
                continue
            # Some tools drop empty cells at the end of a row: treat them as empty.
            rows.append((row_number, dict(zip(header, values + [""] * (width - len(values)), strict=False))))
    except csv.Error as exc:
        raise ImportFileError(
            _("The file is not valid CSV near row %(row)s: %(reason)s") % {"row": line + 1, "reason": exc}
        ) from None
    if not rows and not errors:
        raise ImportFileError(_("The file has a header but no bills."))
    return CsvFile(header=header, rows=rows, errors=errors)


def _header_check(header: list[str], raw: list[str]) -> None:
    errors = []
    if len(raw) == 1 and ";" in raw[0]:
        raise ImportFileError(_("The columns are separated by semicolons. Save the file with commas (CSV UTF-8)."))
    seen = set()
    for name, original in zip(header, raw, strict=True):
        if not name:
            errors.append(RowError(1, "", _("A column has no name.")))
        elif name not in COLUMNS:
            # Unknown columns are refused rather than ignored: "tax_amount" instead of "tax" would otherwise drop
            # every tax in the file without a word.
            errors.append(RowError(1, original.strip(), _("Unknown column.")))
        elif name in seen:
            errors.append(RowError(1, name, _("This column appears twice.")))
        seen.add(name)
    for name in COLUMNS:
        if name in REQUIRED_COLUMNS and name not in seen:
            errors.append(RowError(1, name, _("Required column is missing.")))
    if errors:
        raise ImportFileError(
            _("The header row is not right: %(problems)s") % {"problems": "; ".join(str(e) for e in errors)},
            errors=errors,
        )


class _RowParser:
    """Turns one row's strings into typed values, collecting an error per bad cell."""

    def __init__(self, currency: str):
        self.currency = currency
        self.places = currency_decimals(currency)

    def text(self, row, values, name, errors) -> str:
        value = (values.get(name) or "").strip()
        if not value and name in REQUIRED_COLUMNS:
            errors.append(RowError(row, name, _("A value is required.")))
        elif name in _MAX_LENGTHS and len(value) > _MAX_LENGTHS[name]:
            errors.append(
                RowError(row, name, _("Longer than %(max)s characters.") % {"max": _MAX_LENGTHS[name]})
            )
        return value

    def date(self, row, values, name, errors) -> date | None:
        value = self.text(row, values, name, errors)
        if not value:
            return None
        if _DATE_RE.match(value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        errors.append(RowError(row, name, _("“%(value)s” is not a date. Use YYYY-MM-DD.") % {"value": value}))
        return None

    def money(self, row, values, name, errors) -> int | None:
        value = self.text(row, values, name, errors)
        if not value:
            return None if name in REQUIRED_COLUMNS else 0
        if not _AMOUNT_RE.match(value):
            errors.append(
                RowError(
                    row,
                    name,
                    _("“%(value)s” is not an amount. Use digits and a decimal point, like 1234.50.") % {"value": value},
                )
            )
            return None
        if value.startswith("-") and Decimal(value) != 0:
            errors.append(RowError(row, name, _("Cannot be negative.")))
            return None
        try:
            minor = to_minor(value, self.currency, strict=True)
        except ApplicationError:
            errors.append(
                RowError(
                    row,
                    name,
                    _("“%(value)s” has more than %(places)s decimal places for %(currency)s.")
                    % {"value": value, "places": self.places, "currency": self.currency},
                )
            )
            return None
        if minor > _MAX_MINOR:
            errors.append(RowError(row, name, _("“%(value)s” is too large.") % {"value": value}))
            return None
        return minor

    def quantity(self, row, values, errors) -> Decimal | None:
        value = self.text(row, values, "quantity", errors)
        if not value:
            return Decimal(1)
        try:
            quantity = Decimal(value) if _AMOUNT_RE.match(value) else None
        except InvalidOperation:
            quantity = None
        if quantity is None or quantity <= 0 or quantity >= _MAX_QUANTITY or -quantity.as_tuple().exponent > 3:
            errors.append(
                RowError(
                    row,
                    "quantity",
                    _("“%(value)s” is not a quantity: use a number above zero with at most 3 decimals.")
                    % {"value": value},
                )
            )
            return None
        return quantity

    def issue(self, row, values, errors) -> bool | None:
        value = (values.get("issue") or "").strip().lower()
        if not value or value in _YES:
            return True
        if value in _NO:
            return False
        errors.append(RowError(row, "issue", _("Use yes or no.")))
        return None

    def account(self, row, values, errors) -> dict[str, str] | None:
        before = len(errors)
        account = {name: self.text(row, values, name, errors) for name in ACCOUNT_COLUMNS}
        if account["email"]:
            try:
                validate_email(account["email"])
            except ValidationError:
                errors.append(RowError(row, "email", _("Not a valid e-mail address.")))
        if account["country"]:
            if not re.fullmatch(r"[A-Za-z]{2}", account["country"]):
                errors.append(RowError(row, "country", _("Use a two-letter country code, like US.")))
            account["country"] = account["country"].upper()
        return account if len(errors) == before else None

    def bill(self, row, values, errors) -> dict | None:
        before = len(errors)
        bill = {
            "bill_number": self.text(row, values, "bill_number", errors),
            "period_start": self.date(row, values, "period_start", errors),
            "period_end": self.date(row, values, "period_end", errors),
            "due_date": self.date(row, values, "due_date", errors),
            "issue": self.issue(row, values, errors),
        }
        if bill["period_start"] and bill["period_end"] and bill["period_end"] < bill["period_start"]:
            errors.append(RowError(row, "period_end", _("The billing period ends before it starts.")))
        return bill if len(errors) == before else None

    def line(self, row, values, errors) -> _Line | None:
        before = len(errors)
        description = self.text(row, values, "description", errors)
        quantity = self.quantity(row, values, errors)
        amount = self.money(row, values, "amount", errors)
        tax = self.money(row, values, "tax", errors)
        if len(errors) > before:
            return None
        return _Line(row=row, description=description, quantity=quantity, amount=amount, tax=tax)


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _bill_chunks(bills: list[_Bill], size: int) -> Iterator[list[_Bill]]:
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
    parser = _RowParser(currency)
    chunk_size = max(1, settings.BILL_IMPORT_CHUNK_SIZE)
    result = ImportResult(total_rows=csv_file.total_rows, errors=list(csv_file.errors))
    result.processed_rows = len(csv_file.errors)
    errors = result.errors

    accounts: dict[str, _Account] = {}
    bills: dict[str, _Bill] = {}
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
                    accounts[number] = _Account(number=number, row=row, values=account)
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
                    bill = bills[number] = _Bill(
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
    to_create: list[_Bill] = []
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


def _bill_row_conflict(bill: _Bill, values: dict, account_number: str) -> str | None:
    """The first bill-level column on which a later row of a bill disagrees with its first row."""
    if account_number != bill.account_number:
        return "account_number"
    for name in ("period_start", "period_end", "due_date", "issue"):
        if values[name] != getattr(bill, name):
            return name
    return None


def _bill_difference(bill: _Bill, stored: _StoredBill) -> tuple[str, str] | None:
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


def _write_chunk(*, biller, bills: list[_Bill], accounts: dict[str, _Account], account_ids: dict, actor, batch):
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


def bill_import_run(*, batch: ImportBatch) -> ImportBatch:
    """Run a waiting batch to the end and store its outcome. A batch that is not waiting is left alone, so a task
    delivered twice imports once."""
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
        ImportBatch.objects.filter(pk=batch.pk).update(
            status=ImportBatch.Status.FAILED, finished_at=timezone.now(), errors=[crashed.as_dict()]
        )
        raise
    batch.status = ImportBatch.Status.SUCCEEDED if result.ok else ImportBatch.Status.FAILED
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
