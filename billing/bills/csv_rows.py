"""Reading a bill import file: decode and split the CSV, check its header, and turn each row's cells into typed
values, collecting an error per bad cell (row as a spreadsheet numbers it, column, reason). Nothing here touches the
database; billing/bills/imports.py checks the rows against what is stored and writes them.

Columns are documented in docs/import-format.md; COLUMNS below is the source of truth for what the code accepts.
"""

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _

from ..errors import ApplicationError
from ..models import Bill, BillLine, CustomerAccount
from ..money import currency_decimals, to_minor

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
LINE_COLUMNS = ("description", "quantity", "amount", "tax", "usage_unit", "meter_start", "meter_end")
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
    "usage_unit": BillLine._meta.get_field("usage_unit").max_length,
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
class ParsedLine:
    row: int
    description: str
    quantity: Decimal
    amount: int
    tax: int
    usage_unit: str = ""
    meter_start: Decimal | None = None
    meter_end: Decimal | None = None


@dataclass
class ParsedAccount:
    number: str
    row: int
    values: dict[str, str]


@dataclass
class ParsedBill:
    number: str
    row: int
    account_number: str
    period_start: date
    period_end: date
    due_date: date
    issue: bool
    lines: list[ParsedLine] = field(default_factory=list)
    broken: bool = False  # one of its rows had an error, so its lines are incomplete


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


class RowParser:
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

    def reading(self, row, values, name, errors) -> Decimal | None:
        """A meter reading: empty, or a number from zero up with at most 3 decimals."""
        value = self.text(row, values, name, errors)
        if not value:
            return None
        try:
            reading = Decimal(value) if _AMOUNT_RE.match(value) else None
        except InvalidOperation:
            reading = None
        if reading is None or reading < 0 or reading >= _MAX_QUANTITY or -reading.as_tuple().exponent > 3:
            errors.append(
                RowError(
                    row, name, _("“%(value)s” is not a meter reading: use a number with at most 3 decimals.")
                    % {"value": value},
                )
            )
            return None
        return reading

    def quantity(self, row, values, errors, *, default: Decimal = Decimal(1)) -> Decimal | None:
        value = self.text(row, values, "quantity", errors)
        if not value:
            return default
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

    def line(self, row, values, errors) -> ParsedLine | None:
        before = len(errors)
        description = self.text(row, values, "description", errors)
        unit = self.text(row, values, "usage_unit", errors)
        start = self.reading(row, values, "meter_start", errors)
        end = self.reading(row, values, "meter_end", errors)
        if (start is not None or end is not None) and not unit:
            errors.append(RowError(row, "usage_unit", _("Meter readings need the unit they are in, like kWh.")))
        if start is not None and end is not None and end < start:
            errors.append(RowError(row, "meter_end", _("The end reading is below the start reading.")))
        # A metered line with both readings and no quantity used what the meter moved.
        used = end - start if start is not None and end is not None and end > start else Decimal(1)
        quantity = self.quantity(row, values, errors, default=used)
        amount = self.money(row, values, "amount", errors)
        tax = self.money(row, values, "tax", errors)
        if len(errors) > before:
            return None
        return ParsedLine(
            row=row, description=description, quantity=quantity, amount=amount, tax=tax, usage_unit=unit,
            meter_start=start, meter_end=end,
        )
