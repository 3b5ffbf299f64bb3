"""Importing and matching bank statements in all four formats (samples described in statement_support.py): exact,
partial and over, a typo refused by its check digit and queued with a suggestion, another biller's reference refused,
a return reversing what was applied, fees ignored; re-imports and overlapping statements add nothing; a malformed file
imports nothing and says where; staff decide the queue; the command's report; two imports at once on PostgreSQL."""

import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from billing.banking.formats import StatementFileError
from billing.banking.selectors import name_folded, statement_line_suggestions
from billing.banking.statements import (
    statement_line_assign,
    statement_line_dismiss,
    statement_match,
    statement_preview,
    statement_store,
)
from billing.errors import ApplicationError
from billing.models import AccountCreditEntry, BankStatement, Bill, Payment, StatementLine
from tests.billing.banking.statement_support import FILES, render, sample_accounts
from tests.factories import BillerFactory, make_bill
from tests.notice_sending import celery_eager, receipt_emails  # noqa: F401

FORMATS = list(FILES)


@pytest.fixture(params=FORMATS)
def fmt(request):
    return request.param


@pytest.fixture
def setup(db, fmt):
    currency = FILES[fmt][1]
    biller = BillerFactory(currency=currency)
    other = BillerFactory(slug="elsewhere-gas", name="Elsewhere Gas", currency=currency)
    return biller, sample_accounts(biller, other)


def _import(biller, content, name="statement"):
    return statement_match(statement=statement_store(biller=biller, filename=name, content=content))


def _bill(account):
    return Bill.objects.get(account=account, number__startswith="B-")


def _line(statement, account_key_ref):
    return statement.lines.get(reference=account_key_ref)


def test_every_case_of_the_sample_statement(setup, fmt, django_capture_on_commit_callbacks):
    biller, accounts = setup
    statement = _import(biller, render(fmt, accounts))
    report = statement.report
    assert statement.format == fmt and statement.status == BankStatement.Status.SUCCEEDED
    counts = {k: report[k] for k in ("read", "matched", "partial", "over", "unmatched", "duplicate", "reversed",
                                     "ignored")}  # fmt: skip
    assert counts == {"read": 8, "matched": 1, "partial": 1, "over": 1, "unmatched": 3, "duplicate": 0,
                      "reversed": 1, "ignored": 1}  # fmt: skip
    assert report["money"]["credited"] == 10000 and report["money"]["unmatched"] == 17950 + 8000 + 5500

    # 1 + 8: A's transfer was applied, then returned by the bank: the bill is open again, nothing left paid.
    a_bill = _bill(accounts["A"])
    assert (a_bill.status, a_bill.amount_paid) == (Bill.Status.OPEN, 0)
    a_line = statement.lines.get(account=accounts["A"], direction="credit")
    assert a_line.status == StatementLine.Status.RETURNED
    assert statement.lines.get(direction="debit", is_return=True).reverses == a_line
    # 2: partial, from a reference typed in lower case with spaces in free text.
    b_bill = _bill(accounts["B"])
    assert (b_bill.status, b_bill.balance_due) == (Bill.Status.OPEN, 20000 - 12050)
    # 5: over: the bill is paid, never more than it owes, and 100.00 is held as credit.
    d_bill, d = _bill(accounts["D"]), accounts["D"]
    d.refresh_from_db()
    assert (d_bill.status, d_bill.amount_paid, d.credit_balance) == (Bill.Status.PAID, 20000, 10000)
    # ... and the credit pays D's next bill when it is issued.
    with django_capture_on_commit_callbacks(execute=True):
        next_bill = make_bill(d, amounts=(6000,))
    next_bill.refresh_from_db()
    d.refresh_from_db()
    assert (next_bill.status, d.credit_balance) == (Bill.Status.PAID, 4000)
    assert sum(e.signed_amount for e in AccountCreditEntry.objects.filter(account=d)) == 4000
    # 6: a typo: refused by the check digit, queued, with E as the first suggestion.
    e_line = statement.lines.get(amount=8000)
    assert e_line.status == StatementLine.Status.UNMATCHED and "check digit" in e_line.note
    assert _bill(accounts["E"]).amount_paid == 0
    assert statement_line_suggestions(line=e_line)[0].account == accounts["E"]
    # 7: another biller's account: refused, and that account got nothing.
    f_line = statement.lines.get(amount=5500)
    assert f_line.status == StatementLine.Status.UNMATCHED and "another biller" in f_line.note
    assert not Payment.objects.filter(account=accounts["F"]).exists()
    # 3: no reference: queued; C owes exactly the amount and has the payer's name.
    c_line = statement.lines.get(amount=17950)
    first = statement_line_suggestions(line=c_line)[0]
    assert first.account == accounts["C"] and len(first.reasons) >= 2
    # 4: the fee is listed as ignored, not as unmatched.
    assert statement.lines.get(amount=490).status == StatementLine.Status.IGNORED
    # Every bank-transfer payment is keyed on its bank entry, with channel bank_transfer.
    transfers = Payment.objects.filter(channel=Payment.Channel.BANK_TRANSFER)
    assert transfers.count() == 3 and all(p.idempotency_key.startswith("bank-transfer:") for p in transfers)


def test_a_reimport_and_an_overlapping_statement_create_nothing_new(setup, fmt):
    biller, accounts = setup
    _import(biller, render(fmt, accounts))
    payments, lines = Payment.objects.count(), StatementLine.objects.count()

    again = _import(biller, render(fmt, accounts), name="again")
    assert (again.report["duplicate"], again.report["matched"], again.report["unmatched"]) == (8, 0, 0)
    assert (Payment.objects.count(), StatementLine.objects.count()) == (payments, lines)

    # The next day's statement repeats the last entries (a new statement id) and brings one new transfer.
    content = render(fmt, accounts, statement_id="215").decode()
    new_entry = {
        "camt053": "2026110400000077", "mt940": "2611040000077", "bai2": "2611040000077", "csv": "2611040000077",
    }[fmt]
    overlapping = content.replace(new_entry, new_entry[:-2] + "99")  # the return's entry is now a new one
    later = _import(biller, overlapping.encode(), name="overlap")
    assert later.report["duplicate"] == 7
    assert StatementLine.objects.count() == lines + 1
    assert later.lines.get().status == StatementLine.Status.IGNORED  # a return of a transfer already returned


def test_a_malformed_file_imports_nothing_and_says_which_line(setup, fmt):
    biller, accounts = setup
    content = render(fmt, accounts).decode()
    broken, line = {
        "camt053": (content.replace("<Amt Ccy=\"EUR\">120.50</Amt>", "<Amt Ccy=\"EUR\">12O.50</Amt>"), None),
        "mt940": (content.replace(":61:2611031103CR179,50", ":61:26110X1103CR179,50"), 10),
        "bai2": (content.replace("16,195,17950,0", "16,195,17950X,0"), 8),
        "csv": (content.replace("2026-11-03,179.50", "2026-11-03,179.5O"), 4),
    }[fmt]
    if line is None:
        line = content.splitlines().index(next(s for s in content.splitlines() if "120.50" in s)) + 1
    with pytest.raises(StatementFileError) as caught:
        statement_store(biller=biller, filename="broken", content=broken.encode())
    assert line in [problem.line for problem in caught.value.errors]
    assert not BankStatement.objects.exists() and not StatementLine.objects.exists()
    assert not Payment.objects.filter(channel=Payment.Channel.BANK_TRANSFER).exists()


@pytest.mark.django_db
def test_staff_assign_an_unmatched_line_or_mark_it_not_ours(staff_user):
    biller = BillerFactory(currency="USD")
    accounts = sample_accounts(biller, BillerFactory(slug="elsewhere-gas", currency="USD"))
    statement = _import(biller, render("csv", accounts))
    c_line = statement.lines.get(amount=17950)
    assign = statement_line_assign(line=c_line, account=accounts["C"], actor=staff_user)
    assert (assign.status, assign.decided_by, assign.outcome) == (StatementLine.Status.APPLIED, staff_user, "exact")
    assert _bill(accounts["C"]).status == Bill.Status.PAID
    with pytest.raises(ApplicationError):  # once only
        statement_line_assign(line=c_line, account=accounts["C"], actor=staff_user)
    f_line = statement.lines.get(amount=5500)
    with pytest.raises(ApplicationError):  # never onto another biller's account
        statement_line_assign(line=f_line, account=accounts["F"], actor=staff_user)
    dismissed = statement_line_dismiss(line=f_line, actor=staff_user)
    assert dismissed.status == StatementLine.Status.NOT_OURS


@pytest.mark.django_db
def test_the_payer_gets_the_receipt(celery_eager, mailoutbox, django_capture_on_commit_callbacks):  # noqa: F811
    biller = BillerFactory(currency="USD")
    accounts = sample_accounts(biller, BillerFactory(slug="elsewhere-gas", currency="USD"))
    with django_capture_on_commit_callbacks(execute=True):
        _import(biller, render("csv", accounts))
    to = sorted(address for mail in receipt_emails(mailoutbox) for address in mail.to)
    assert to == sorted([accounts["A"].email, accounts["B"].email, accounts["D"].email])


@pytest.mark.django_db
def test_the_command_reports_and_a_dry_run_writes_nothing(tmp_path, capsys):
    biller = BillerFactory(currency="USD")
    accounts = sample_accounts(biller, BillerFactory(slug="elsewhere-gas", currency="USD"))
    path = tmp_path / "statement.bai"
    path.write_bytes(render("bai2", accounts))

    call_command("import_statement", str(path), "--biller", biller.slug, "--dry-run")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "dry run: nothing was written" and out[-1] == "matched=3 unmatched=3 duplicate=0"
    assert not StatementLine.objects.exists() and not Payment.objects.filter(channel="bank_transfer").exists()

    call_command("import_statement", str(path), "--biller", biller.slug)
    assert capsys.readouterr().out.splitlines()[-1] == "matched=3 unmatched=3 duplicate=0"
    call_command("import_statement", str(path), "--biller", biller.slug)
    assert capsys.readouterr().out.splitlines()[-1] == "matched=0 unmatched=0 duplicate=8"

    path.write_bytes(path.read_bytes().replace(b"16,195,8000,0", b"16,195,80X0,0"))
    with pytest.raises(CommandError):
        call_command("import_statement", str(path), "--biller", biller.slug)
    assert "line 13" in capsys.readouterr().err


def test_the_dry_run_predicts_the_import(setup, fmt):
    biller, accounts = setup
    content = render(fmt, accounts)
    preview = statement_preview(biller=biller, content=content)
    report = _import(biller, content).report
    keys = ("read", "matched", "partial", "over", "unmatched", "duplicate", "reversed", "ignored")
    assert {k: preview[k] for k in keys} == {k: report[k] for k in keys}


def test_names_compare_across_banks():
    assert name_folded("ZOË ÅNGSTRÖM") == name_folded("Zoe Angstrom") == "zoe angstrom"
    assert name_folded("Łukasz Wiśniewski") == "lukasz wisniewski"


def test_two_imports_of_the_same_file_at_once_apply_each_line_once(require_postgres, transactional_db):
    biller = BillerFactory(currency="USD")
    accounts = sample_accounts(biller, BillerFactory(slug="elsewhere-gas", currency="USD"))
    content = render("csv", accounts)
    start = threading.Barrier(2)
    errors = []

    def worker(name):
        try:
            start.wait()
            _import(biller, content, name=name)
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(f"copy-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert StatementLine.objects.count() == 8
    assert Payment.objects.filter(channel=Payment.Channel.BANK_TRANSFER).count() == 3
    duplicates = sorted(s.report["duplicate"] for s in BankStatement.objects.all())
    assert duplicates == [0, 8]
    b_bill = _bill(accounts["B"])
    assert b_bill.amount_paid == 12050  # once, not twice
