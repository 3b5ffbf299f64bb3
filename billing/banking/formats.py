"""Reading bank statements: camt.053 (ISO 20022 XML), SWIFT MT940, BAI2 and our CSV, detected from the content.

Every reader turns a file into one `ParsedStatement` of `ParsedLine`s (one per booked transaction: a batch booking
gives one line per transaction in it) or raises `StatementFileError` with the problems by line; nothing is stored
until the whole file reads cleanly.

- MT940: the maintained `mt-940` package (pinned). It reads the German/SEPA structured :86: (GVC ?20-?32 subfields:
  end-to-end id, remittance, payer) and reversal marks (RC/RD).
- BAI2: the maintained `bai2` package (pinned), with its integrity checks (record counts, control totals).
- camt.053: our own, on lxml with entities and network off. The packages looked at (pycamt 1.1.1, camt053) either
  give every transaction of a batch booking the entry's first bank reference (so they would collide as unique keys)
  or drop the return information (`RtrInf`, the original end-to-end id) and the source line numbers this report
  needs. The XML paths read are few and standard (ISO 20022 camt.053.001.02-.08).
- CSV: ours, documented in docs/bank-transfers.md.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from billing.errors import ApplicationError
from billing.money import to_minor, validate_currency

CREDIT, DEBIT = "credit", "debit"


@dataclass(frozen=True)
class LineError:
    line: int | None
    message: str

    def as_dict(self) -> dict:
        return {"line": self.line, "message": self.message}


class StatementFileError(ApplicationError):
    """The file cannot be read as a statement; `errors` say where (line numbers of the file)."""

    def __init__(self, message: str, *, errors: list[LineError] | None = None):
        super().__init__(message)
        self.errors = errors or [LineError(None, message)]


@dataclass
class ParsedLine:
    line_number: int  # where the entry starts in the file (1-based)
    entry_key: str  # the bank's reference for the entry, or statement id + position
    booking_date: date
    direction: str
    amount: int  # minor units, > 0
    currency: str
    bank_transaction_id: str = ""
    end_to_end_id: str = ""
    remittance: str = ""
    counterparty_name: str = ""
    counterparty_account: str = ""
    is_return: bool = False


@dataclass
class ParsedStatement:
    format: str
    statement_id: str
    bank_account: str
    lines: list[ParsedLine] = field(default_factory=list)


def statement_parse(content: bytes) -> ParsedStatement:
    """Detect the format from the content and read it all, or raise StatementFileError."""
    text = _decode(content)
    head = text.lstrip("\ufeff \r\n\t")[:2000]
    if head.startswith("<") and "camt.053" in head:
        return camt053_parse(content)
    if head.startswith("01,"):
        return bai2_parse(text)
    if re.match(r"(\{1:[^}]*\})?(\{2:[^}]*\})?(\{4:\s*)?:20:", head) or re.search(r"^:20:", head, re.M):
        return mt940_parse(text)
    first = head.splitlines()[0] if head else ""
    if "booking_date" in first and "amount" in first:
        return csv_parse(text)
    raise StatementFileError(
        "This is not a statement Billpay reads: expected camt.053 XML, MT940, BAI2 or the documented CSV."
    )


def _decode(content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("latin-1")  # MT940 and BAI2 files from older bank systems


def _minor(value, currency: str, line: int, errors: list[LineError]) -> int | None:
    try:
        amount = to_minor(Decimal(str(value).replace(",", ".")), currency, strict=True)
    except (ApplicationError, InvalidOperation, ValueError):
        errors.append(LineError(line, f"“{value}” is not an amount in {currency}."))
        return None
    if amount == 0:
        errors.append(LineError(line, "An entry of zero."))
        return None
    return abs(amount)


def _fail_if(errors: list[LineError], fmt: str) -> None:
    if errors:
        raise StatementFileError(f"The {fmt} file has {len(errors)} problem(s); nothing was imported.", errors=errors)


# --- camt.053 ------------------------------------------------------------------------------------------------------

# ISO 20022 bank transaction codes (domain PMNT) that mean a return of a transfer, and the proprietary ones banks use.
_RETURN_SUBFAMILIES = {"RRTN", "RPCR", "ARET"}


def camt053_parse(content: bytes) -> ParsedStatement:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True)
    try:
        root = etree.fromstring(content, parser=parser)
    except etree.XMLSyntaxError as error:
        raise StatementFileError(
            "The camt.053 file is not well-formed XML.", errors=[LineError(error.lineno, str(error.msg))]
        ) from None

    def local(el) -> str:
        return etree.QName(el).localname

    def child(el, *path):
        for name in path:
            if el is None:
                return None
            el = next((c for c in el if isinstance(c.tag, str) and local(c) == name), None)
        return el

    def children(el, name):
        return [c for c in (el if el is not None else ()) if isinstance(c.tag, str) and local(c) == name]

    def text(el, *path) -> str:
        found = child(el, *path)
        return (found.text or "").strip() if found is not None else ""

    errors: list[LineError] = []
    document = child(root, "BkToCstmrStmt")
    statements = children(document, "Stmt")
    if document is None or not statements:
        raise StatementFileError("No camt.053 statement (BkToCstmrStmt/Stmt) in this file.")
    result = ParsedStatement(format="camt053", statement_id="", bank_account="")
    for stmt in statements:
        statement_id = text(stmt, "Id")
        result.statement_id = result.statement_id or statement_id
        result.bank_account = result.bank_account or text(stmt, "Acct", "Id", "IBAN") or text(
            stmt, "Acct", "Id", "Othr", "Id"
        )
        for position, entry in enumerate(children(stmt, "Ntry"), start=1):
            line = entry.sourceline
            if text(entry, "Sts") not in ("BOOK", "") and text(entry, "Sts", "Cd") not in ("BOOK", ""):
                continue  # pending or informational entries are not booked money
            indicator = text(entry, "CdtDbtInd")
            if indicator not in ("CRDT", "DBIT"):
                errors.append(LineError(line, f"Entry {position}: CdtDbtInd must be CRDT or DBIT."))
                continue
            reversal = text(entry, "RvslInd").lower() == "true"
            booked = text(entry, "BookgDt", "Dt") or text(entry, "BookgDt", "DtTm")[:10]
            try:
                booking_date = date.fromisoformat(booked)
            except ValueError:
                errors.append(LineError(line, f"Entry {position}: booking date “{booked}” is not a date."))
                continue
            entry_amount = child(entry, "Amt")
            entry_ref = text(entry, "AcctSvcrRef") or text(entry, "NtryRef")
            subfamily = text(entry, "BkTxCd", "Domn", "Fmly", "SubFmlyCd")
            details = [tx for d in children(entry, "NtryDtls") for tx in children(d, "TxDtls")] or [None]
            batch = len(details) > 1
            for index, tx in enumerate(details, start=1):
                amount_el = None
                if tx is not None:
                    amount_el = child(tx, "Amt")
                    if amount_el is None:
                        amount_el = child(tx, "AmtDtls", "TxAmt", "Amt")
                if amount_el is None and not batch:
                    amount_el = entry_amount  # one transaction: the entry's amount is its amount
                if amount_el is None:
                    errors.append(LineError(line, f"Entry {position}: no amount."))
                    continue
                currency = amount_el.get("Ccy", "")
                try:
                    currency = validate_currency(currency)
                except ApplicationError:
                    errors.append(LineError(amount_el.sourceline, f"“{currency}” is not a currency."))
                    continue
                amount = _minor(amount_el.text, currency, amount_el.sourceline, errors)
                if amount is None:
                    continue
                tx_indicator = text(tx, "CdtDbtInd") or indicator
                incoming = tx_indicator == "CRDT"
                tx_ref = text(tx, "Refs", "AcctSvcrRef") or text(tx, "Refs", "TxId")
                key = tx_ref or (f"{entry_ref}/{index}" if entry_ref and batch else entry_ref)
                if not key:
                    key = f"{statement_id}/{position}/{index}"
                parties = child(tx, "RltdPties")
                name = account = ""
                for role in ("Dbtr", "Cdtr") if incoming else ("Cdtr", "Dbtr"):
                    name = name or text(parties, role, "Nm") or text(parties, role, "Pty", "Nm")
                    account = account or text(parties, role + "Acct", "Id", "IBAN") or text(
                        parties, role + "Acct", "Id", "Othr", "Id"
                    )
                rmt = child(tx, "RmtInf")
                remittance = " ".join(
                    [(u.text or "").strip() for u in children(rmt, "Ustrd")]
                    + [text(s, "CdtrRefInf", "Ref") for s in children(rmt, "Strd")]
                    + [text(s, "AddtlRmtInf") for s in children(rmt, "Strd")]
                    + [text(tx, "RtrInf", "Rsn", "Cd"), text(tx, "RtrInf", "AddtlInf"), text(tx, "AddtlTxInf")]
                    + [text(entry, "AddtlNtryInf")]
                ).strip()
                is_return = (not incoming and (subfamily in _RETURN_SUBFAMILIES or child(tx, "RtrInf") is not None))
                is_return = is_return or (reversal and not incoming)
                result.lines.append(
                    ParsedLine(
                        line_number=(tx.sourceline if tx is not None else line) or 0, entry_key=key,
                        booking_date=booking_date, direction=CREDIT if incoming else DEBIT, amount=amount,
                        currency=currency, bank_transaction_id=tx_ref or entry_ref,
                        end_to_end_id=_real(text(tx, "Refs", "EndToEndId")), remittance=" ".join(remittance.split()),
                        counterparty_name=name, counterparty_account=account, is_return=is_return,
                    )  # fmt: skip
                )
    _fail_if(errors, "camt.053")
    return result


def _real(value: str) -> str:
    return "" if value.upper() in ("NOTPROVIDED", "NONREF", "NONE") else value


# --- MT940 ---------------------------------------------------------------------------------------------------------

# Transaction type ids and GVC codes (German banks) that mean a return of a transfer.
_MT940_RETURN_IDS = {"NRTI", "NRET"}
_MT940_RETURN_GVC = {"159", "109"}


def mt940_parse(text: str) -> ParsedStatement:
    import mt940

    lines = text.splitlines()
    tag61 = [number for number, raw in enumerate(lines, start=1) if raw.startswith(":61:")]
    try:
        transactions = mt940.models.Transactions()
        transactions.parse(text)
    except Exception as error:  # the package raises plain ValueError/RuntimeError on a bad tag
        raise StatementFileError(
            "The MT940 file cannot be read.", errors=[_mt940_where(lines, str(error))]
        ) from None
    errors: list[LineError] = []
    result = ParsedStatement(
        format="mt940",
        statement_id="/".join(
            filter(None, [transactions.data.get("transaction_reference"), transactions.data.get("statement_number")])
        ),
        bank_account=transactions.data.get("account_identification") or "",
    )
    if len(transactions.transactions) != len(tag61):
        errors.append(LineError(None, f"{len(tag61)} :61: lines but {len(transactions.transactions)} entries read."))
    for position, (tx, line) in enumerate(zip(transactions.transactions, tag61, strict=False), start=1):
        data = tx.data
        amount_obj = data.get("amount")
        if amount_obj is None:
            errors.append(LineError(line, "No amount."))
            continue
        currency = amount_obj.currency
        amount = _minor(abs(amount_obj.amount), currency, line, errors)
        if amount is None:
            continue
        status = (data.get("status") or "").upper()
        # C and RD (a reversed debit) are money in; D and RC (a reversed credit: a return) money out. mt-940 5.x
        # signs only D by default, so the mark decides, not the sign.
        incoming = status in ("C", "RD")
        bank_ref = (data.get("bank_reference") or "").strip()
        statement_ref = f"{result.statement_id}/{position}"
        booked = data.get("entry_date") or data.get("date")
        is_return = not incoming and (
            status.startswith("R") or data.get("id") in _MT940_RETURN_IDS
            or data.get("transaction_code") in _MT940_RETURN_GVC
        )  # fmt: skip
        name = (data.get("applicant_name") or "").strip()
        iban = data.get("applicant_iban") or data.get("gvc_applicant_iban") or ""
        if not iban:
            iban, name = _iban_split(name)  # the package runs ?31 (account) into ?32 (name)
        result.lines.append(
            ParsedLine(
                line_number=line, entry_key=bank_ref if bank_ref and bank_ref.upper() != "NONREF" else statement_ref,
                booking_date=date(booked.year, booked.month, booked.day), direction=CREDIT if incoming else DEBIT,
                amount=amount, currency=currency, bank_transaction_id=bank_ref,
                end_to_end_id=_real(data.get("end_to_end_reference") or ""),
                remittance=" ".join(
                    filter(None, [data.get("purpose"), data.get("additional_purpose"), data.get("customer_reference")
                                  if (data.get("customer_reference") or "").upper() != "NONREF" else ""])
                ),
                counterparty_name=name, counterparty_account=iban, is_return=is_return,
            )  # fmt: skip
        )
    _fail_if(errors, "MT940")
    return result


def _iban_split(text: str) -> tuple[str, str]:
    from stdnum import iban

    if re.match(r"^[A-Z]{2}\d{2}", text):
        for length in range(min(34, len(text)), 14, -1):
            if iban.is_valid(text[:length]):
                return text[:length], text[length:].strip()
    return "", text


def _mt940_where(lines: list[str], message: str) -> LineError:
    for number, raw in enumerate(lines, start=1):
        snippet = raw.strip()[:20]
        if snippet and snippet in message:
            return LineError(number, message)
    for number, raw in enumerate(lines, start=1):
        if raw.startswith(":61:") and not re.match(r":61:\d{6}(\d{4})?R?[CD][A-Z]?\d+,\d*", raw):
            return LineError(number, f"This :61: line does not read as date, C/D and amount. ({message})")
    return LineError(None, message)


# --- BAI2 ----------------------------------------------------------------------------------------------------------

# BAI type codes of returned items (a transfer sent back).
_BAI2_RETURN_CODES = {"555", "556", "257", "258"}


def bai2_parse(text: str) -> ParsedStatement:
    from bai2 import bai2
    from bai2.constants import TypeCodeTransaction

    lines = text.splitlines()
    try:
        document = bai2.parse_from_lines(lines, check_integrity=True)
    except Exception as error:  # bai2's ParsingException / IntegrityException / NotSupportedYetException
        raise StatementFileError("The BAI2 file cannot be read.", errors=[_bai2_where(lines, error)]) from None
    record_lines = [n for n, raw in enumerate(lines, start=1) if raw.startswith("16,")]
    errors: list[LineError] = []
    result = ParsedStatement(format="bai2", statement_id=f"{document.header.sender_id}/{document.header.file_id}",
                             bank_account="")  # fmt: skip
    position = 0
    for group in document.children:
        for account in group.children:
            result.bank_account = result.bank_account or account.header.customer_account_number
            currency = account.header.currency or group.header.currency or "USD"
            for tx in account.children:
                line = record_lines[position] if position < len(record_lines) else 0
                position += 1
                if tx.type_code.transaction not in (TypeCodeTransaction.credit, TypeCodeTransaction.debit):
                    continue
                incoming = tx.type_code.transaction == TypeCodeTransaction.credit
                amount = tx.amount if isinstance(tx.amount, int) else None
                if not amount:
                    errors.append(LineError(line, "An entry of zero, or no amount."))
                    continue
                info = (tx.text or "").lstrip(",").strip()
                name = ""
                match = re.search(r"ORIGINATOR=([^/]+)", info)
                if match:
                    name = match.group(1).strip()
                customer_ref = _real((tx.customer_reference or "").strip())
                bank_ref = (tx.bank_reference or "").strip()
                result.lines.append(
                    ParsedLine(
                        line_number=line, entry_key=bank_ref or f"{result.statement_id}/{position}",
                        booking_date=group.header.as_of_date, direction=CREDIT if incoming else DEBIT, amount=amount,
                        currency=currency, bank_transaction_id=bank_ref, end_to_end_id=customer_ref,
                        remittance=info, counterparty_name=name,
                        is_return=not incoming and (tx.type_code.code in _BAI2_RETURN_CODES or "RETURN" in info.upper()),
                    )  # fmt: skip
                )
    _fail_if(errors, "BAI2")
    return result


def _bai2_where(lines: list[str], error: Exception) -> LineError:
    for number, raw in enumerate(lines, start=1):
        code = raw.split(",", 1)[0]
        if code not in ("01", "02", "03", "16", "49", "88", "98", "99"):
            return LineError(number, f"Unknown record “{code}”. ({error})")
        if code == "16":
            fields = raw.split(",")
            if len(fields) < 3 or not fields[2].isdigit():
                return LineError(number, f"A 16 record needs a type code and an amount in minor units. ({error})")
    return LineError(None, str(error))


# --- CSV -----------------------------------------------------------------------------------------------------------

CSV_COLUMNS = ("entry_id", "booking_date", "amount", "currency", "payer_name", "payer_account", "remittance",
               "end_to_end_id", "kind")  # fmt: skip
CSV_REQUIRED = ("entry_id", "booking_date", "amount", "currency")


def csv_parse(text: str) -> ParsedStatement:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in CSV_REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise StatementFileError(
            "The CSV header lacks " + ", ".join(missing) + ".", errors=[LineError(1, "Missing: " + ", ".join(missing))]
        )
    errors: list[LineError] = []
    result = ParsedStatement(format="csv", statement_id="", bank_account="")
    dates: dict[str, date] = {}  # a statement's lines share a few booking dates: each is parsed once
    for row in reader:
        line = reader.line_num
        raw_date = (row.get("booking_date") or "").strip()
        booking_date = dates.get(raw_date)
        if booking_date is None:
            try:
                booking_date = dates[raw_date] = datetime.strptime(raw_date, "%Y-%m-%d").date()
            except ValueError:
                errors.append(LineError(line, f"booking_date “{row.get('booking_date')}” is not YYYY-MM-DD."))
                continue
        try:
            currency = validate_currency((row.get("currency") or "").strip())
        except ApplicationError:
            errors.append(LineError(line, f"currency “{row.get('currency')}” is not an ISO 4217 code."))
            continue
        raw_amount = (row.get("amount") or "").strip()
        amount = _minor(raw_amount.lstrip("+-"), currency, line, errors)
        entry_id = (row.get("entry_id") or "").strip()
        if not entry_id:
            errors.append(LineError(line, "entry_id is empty."))
        kind = (row.get("kind") or "").strip().lower()
        if kind not in ("", "transfer", "return", "fee", "other"):
            errors.append(LineError(line, f"kind “{kind}” is not transfer, return, fee or other."))
        if amount is None or not entry_id:
            continue
        incoming = not raw_amount.startswith("-")
        result.lines.append(
            ParsedLine(
                line_number=line, entry_key=entry_id, booking_date=booking_date,
                direction=CREDIT if incoming else DEBIT, amount=amount, currency=currency, bank_transaction_id=entry_id,
                end_to_end_id=_real((row.get("end_to_end_id") or "").strip()),
                remittance=(row.get("remittance") or "").strip(), counterparty_name=(row.get("payer_name") or "").strip(),
                counterparty_account=(row.get("payer_account") or "").strip(),
                is_return=not incoming and kind == "return",
            )  # fmt: skip
        )
    _fail_if(errors, "CSV")
    return result
