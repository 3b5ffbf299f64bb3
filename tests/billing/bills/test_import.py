import datetime as dt
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.bills import imports
from billing.bills.csv_rows import ImportFileError, bill_import_file_read
from billing.bills.imports import bill_import_batch_create, bill_import_run
from billing.bills.tasks import bill_import_run_task
from billing.models import Bill, BillingEvent, BillLine, CustomerAccount, ImportBatch
from tests.factories import BillerFactory, CustomerAccountFactory, make_bill
from tests.staff_support import staff_login

COLUMNS = [
    "account_number",
    "holder_name",
    "postal_code",
    "address_line1",
    "city",
    "email",
    "phone",
    "bill_number",
    "period_start",
    "period_end",
    "due_date",
    "description",
    "quantity",
    "amount",
    "tax",
    "issue",
]


def line(bill="B-1", account="A-1", **values):
    row = {
        "account_number": account,
        "holder_name": f"Holder {account}",
        "postal_code": "12345",
        "address_line1": "1 Main St",
        "city": "Riverside",
        "email": f"{account.lower()}@example.com",
        "phone": "",
        "bill_number": bill,
        "period_start": "2025-01-01",
        "period_end": "2025-01-31",
        "due_date": "2025-02-20",
        "description": "Water",
        "quantity": "",
        "amount": "10.00",
        "tax": "",
        "issue": "",
    }
    row.update(values)
    return row


def to_csv(rows, columns=COLUMNS, bom=False) -> bytes:
    def cell(value):
        value = str(value)
        return f'"{value}"' if any(ch in value for ch in ',"\n') else value

    text = "\r\n".join([",".join(columns)] + [",".join(cell(r.get(c, "")) for c in columns) for r in rows]) + "\r\n"
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")


def run_import(biller, content, filename="bills.csv", actor=None) -> ImportBatch:
    batch = bill_import_batch_create(biller=biller, filename=filename, content=content, actor=actor)
    return bill_import_run(batch=batch)


def row_counts():
    return {model.__name__: model.objects.count() for model in (Bill, BillLine, CustomerAccount, BillingEvent)}


def test_good_file_creates_accounts_and_issued_bills(biller, staff_user):
    existing = CustomerAccountFactory(biller=biller, account_number="A-9", holder_name="Ann Old", postal_code="9 9 9")
    content = to_csv(
        [
            line("B-1", "A-1", description="Water", amount="30.00", quantity="3", tax="2.10"),
            line("B-1", "A-1", description="Sewer", amount="12.50"),
            line("B-2", "A-2", amount="99.99", issue="no"),
            # An existing account: identity matches (case and spacing aside), contact details in the file differ.
            line("B-3", "A-9", holder_name="ann  OLD", postal_code="999", email="new@example.com", amount="5"),
            line("B-4", "A-1", amount="0"),
        ],
        bom=True,
    )
    batch = run_import(biller, content, actor=staff_user)

    assert batch.status == ImportBatch.Status.SUCCEEDED, batch.errors
    assert (batch.total_rows, batch.processed_rows) == (5, 5)
    assert (batch.accounts_created, batch.bills_created, batch.bills_skipped) == (2, 4, 0)
    assert batch.errors == []

    b1 = Bill.objects.get(biller=biller, number="B-1")
    assert (b1.subtotal, b1.tax, b1.total) == (4250, 210, 4460)
    assert (b1.status, b1.issue_date, b1.import_batch) == (Bill.Status.OPEN, timezone.localdate(), batch)
    assert (b1.period_start, b1.period_end, b1.due_date) == (
        dt.date(2025, 1, 1),
        dt.date(2025, 1, 31),
        dt.date(2025, 2, 20),
    )
    assert [
        (li.position, li.description, li.quantity, li.unit_amount, li.amount, li.tax_amount) for li in b1.lines.all()
    ] == [
        (0, "Water", 3, 1000, 3000, 210),
        (1, "Sewer", 1, 1250, 1250, 0),
    ]
    assert b1.account.holder_name == "Holder A-1" and b1.account.import_batch == batch
    assert list(b1.events.order_by("pk").values_list("kind", "from_status", "to_status", "actor")) == [
        (BillingEvent.Kind.IMPORTED, "", "draft", staff_user.pk),
        (BillingEvent.Kind.BILL_STATUS, "draft", "open", staff_user.pk),
    ]

    b2 = Bill.objects.get(number="B-2")
    assert (b2.status, b2.issue_date, b2.total) == (Bill.Status.DRAFT, None, 9999)
    assert Bill.objects.get(number="B-4").status == Bill.Status.PAID  # nothing to pay, as bill_issue does

    b3 = Bill.objects.get(number="B-3")
    existing.refresh_from_db()
    assert b3.account == existing
    assert (existing.holder_name, existing.email) != ("ann  OLD", "new@example.com")  # never overwritten
    assert CustomerAccount.objects.filter(biller=biller).count() == 3
    assert all(bill.total == bill.subtotal + bill.tax for bill in Bill.objects.all())


def test_bad_rows_are_all_reported_and_nothing_is_written(biller):
    stored_account = CustomerAccountFactory(biller=biller, account_number="A-7", holder_name="Zed", postal_code="7")
    old = make_bill(stored_account, number="B-OLD", amounts=(1000,))
    same_dates = {name: getattr(old, name).isoformat() for name in ("period_start", "period_end", "due_date")}
    before = row_counts()
    content = to_csv(
        [
            line("B-1", "A-1"),  # row 2: fine
            line("B-2", "A-2", period_start="2025-13-01"),  # row 3
            line("B-3", "A-3", period_start="2025-02-01", period_end="2025-01-01"),  # row 4
            line("B-4", "A-4", amount="12.345"),  # row 5: more decimals than USD has
            line("B-5", "A-5", amount="-3.00"),  # row 6
            line("B-6", "A-6", holder_name=""),  # row 7
            line("B-7", "A-1", email="someone-else@example.com"),  # row 8: A-1 differs from row 2
            line("B-1", "A-1", due_date="2025-03-01"),  # row 9: B-1 differs from row 2
            line("B-OLD", "A-7", holder_name="Zed", postal_code="7", amount="11.00", **same_dates),  # row 10
            line("B-8", "A-8", amount="1,50", email="not-an-email"),  # row 11: two problems
        ]
    )
    batch = run_import(biller, content)

    assert batch.status == ImportBatch.Status.FAILED
    assert [(e["row"], e["column"]) for e in batch.errors] == [
        (3, "period_start"),
        (4, "period_end"),
        (5, "amount"),
        (6, "amount"),
        (7, "holder_name"),
        (8, "email"),
        (9, "due_date"),
        (10, "bill_number"),
        (11, "email"),
        (11, "amount"),
    ]
    messages = {(e["row"], e["column"]): e["message"] for e in batch.errors}
    assert "more than 2 decimal places" in messages[(5, "amount")]
    assert "negative" in messages[(6, "amount")]
    assert "row 2" in messages[(8, "email")] and "row 2" in messages[(9, "due_date")]
    assert "already exists" in messages[(10, "bill_number")]
    assert (batch.accounts_created, batch.bills_created, batch.bills_skipped) == (0, 0, 0)
    assert batch.processed_rows == batch.total_rows == 10
    assert row_counts() == before


def test_missing_and_unknown_header_columns_are_reported(biller):
    columns = [c for c in COLUMNS if c not in ("due_date", "amount")] + ["tax_amount"]
    with pytest.raises(ImportFileError) as caught:
        bill_import_file_read(content=to_csv([line()], columns=columns))
    assert {(e.row, e.column) for e in caught.value.errors} == {(1, "due_date"), (1, "amount"), (1, "tax_amount")}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"account_number;holder_name\n1;x\n", "semicolons"),
        ("account_number,holder_name\nA,Ærø\n".encode("latin-1"), "not UTF-8"),
        (b"PK\x03\x04\x00\x00binary", "not a CSV"),
        (to_csv([]), "no bills"),
    ],
)
def test_unreadable_files_are_refused(content, message):
    with pytest.raises(ImportFileError, match=message):
        bill_import_file_read(content=content)


def test_reimporting_the_same_file_creates_nothing_more(biller):
    content = to_csv([line("B-1", "A-1"), line("B-1", "A-1", description="Sewer"), line("B-2", "A-2")])
    first = run_import(biller, content)
    assert (first.accounts_created, first.bills_created, first.bills_skipped) == (2, 2, 0)
    counts = row_counts()

    second = run_import(biller, content)
    assert second.status == ImportBatch.Status.SUCCEEDED
    assert (second.accounts_created, second.bills_created, second.bills_skipped) == (0, 0, 2)
    assert row_counts() == counts

    # A file with one old bill and one new one adds only the new one.
    third = run_import(biller, to_csv([line("B-2", "A-2"), line("B-3", "A-2")]))
    assert (third.accounts_created, third.bills_created, third.bills_skipped) == (0, 1, 1)


def test_rows_of_one_bill_are_grouped_wherever_they_are(biller):
    content = to_csv(
        [
            line("B-1", "A-1", description="First", amount="1.00"),
            line("B-2", "A-2", description="Other", amount="5.00"),
            line("B-1", "A-1", description="Second", amount="2.00", tax="0.20"),
            line("B-1", "A-1", description="Third", amount="3.00"),
        ]
    )
    batch = run_import(biller, content)
    assert batch.bills_created == 2
    bill = Bill.objects.get(number="B-1")
    assert [li.description for li in bill.lines.all()] == ["First", "Second", "Third"]
    assert (bill.subtotal, bill.tax, bill.total) == (600, 20, 620)


def test_kwd_amounts_have_three_decimals(db):
    kwd = BillerFactory(slug="gulf-power", name="Gulf Power", currency="KWD")
    batch = run_import(kwd, to_csv([line("K-1", "A-1", amount="12.345", tax="0.005")]))
    bill = Bill.objects.get(biller=kwd, number="K-1")
    assert (bill.currency, bill.subtotal, bill.tax, bill.total) == ("KWD", 12345, 5, 12350)
    assert batch.status == ImportBatch.Status.SUCCEEDED

    rejected = run_import(kwd, to_csv([line("K-2", "A-1", amount="1.2345")]))
    assert [(e["row"], e["column"]) for e in rejected.errors] == [(2, "amount")]
    assert "3 decimal places for KWD" in rejected.errors[0]["message"]


def test_an_existing_account_with_another_holder_is_an_error(biller):
    CustomerAccountFactory(biller=biller, account_number="A-1", holder_name="Somebody Else", postal_code="12345")
    batch = run_import(biller, to_csv([line("B-1", "A-1")]))
    assert [(e["row"], e["column"]) for e in batch.errors] == [(2, "holder_name")]
    assert not Bill.objects.exists()


def test_a_failure_while_writing_leaves_nothing_behind(biller, settings):
    settings.BILL_IMPORT_CHUNK_SIZE = 2
    content = to_csv([line(f"B-{i}", f"A-{i}") for i in range(6)])
    before = row_counts()
    real_write = imports._write_chunk
    calls = []

    def write_then_collide(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise IntegrityError("duplicate key: someone else inserted B-2")
        return real_write(**kwargs)

    with mock.patch.object(imports, "_write_chunk", side_effect=write_then_collide):
        batch = run_import(biller, content)
    assert len(calls) == 2  # the first chunk was written, then rolled back
    assert batch.status == ImportBatch.Status.FAILED
    assert "Nothing was imported" in batch.errors[0]["message"]
    assert row_counts() == before


def test_an_unexpected_error_marks_the_batch_failed(biller):
    batch = bill_import_batch_create(biller=biller, filename="bills.csv", content=to_csv([line()]))
    with mock.patch.object(imports, "bills_import", side_effect=RuntimeError("boom")), pytest.raises(RuntimeError):
        bill_import_run(batch=batch)
    batch.refresh_from_db()
    assert batch.status == ImportBatch.Status.FAILED and batch.errors
    assert not Bill.objects.exists()


def test_the_task_runs_a_waiting_batch_once(biller):
    batch = bill_import_batch_create(biller=biller, filename="bills.csv", content=to_csv([line()]))
    bill_import_run_task.run(batch.pk)
    bill_import_run_task.run(batch.pk)  # a second delivery finds the batch done and does nothing
    batch.refresh_from_db()
    assert (batch.status, batch.bills_created) == (ImportBatch.Status.SUCCEEDED, 1)
    assert Bill.objects.count() == 1


def test_progress_is_saved_after_each_chunk(biller, settings):
    settings.BILL_IMPORT_CHUNK_SIZE = 2
    content = to_csv([line(f"B-{i}", "A-1") for i in range(5)])
    seen = []
    imports.bills_import(
        biller=biller, csv_file=bill_import_file_read(content=content), dry_run=True, progress=seen.append
    )
    assert seen == [2, 4, 5]

    # Through the batch: every row is checked, and that is saved, before the write transaction starts.
    batch = bill_import_batch_create(biller=biller, filename="bills.csv", content=content)
    real_write = imports._write_chunk
    stored_progress = []

    def write(**kwargs):
        stored_progress.append(ImportBatch.objects.values_list("status", "processed_rows").get(pk=batch.pk))
        return real_write(**kwargs)

    with mock.patch.object(imports, "_write_chunk", side_effect=write):
        bill_import_run(batch=batch)
    assert stored_progress[0] == (ImportBatch.Status.RUNNING, 5)


def _queries_for(biller, rows: int, prefix: str) -> int:
    content = to_csv([line(f"{prefix}-{i}", f"{prefix}-{i // 2}", description="x") for i in range(rows)])
    batch = bill_import_batch_create(biller=biller, filename="bills.csv", content=content)
    with CaptureQueriesContext(connection) as queries:
        bill_import_run(batch=batch)
    batch.refresh_from_db()
    assert batch.bills_created == rows, batch.errors
    return len(queries)


def test_queries_per_chunk_do_not_grow_with_rows(biller, settings):
    settings.BILL_IMPORT_CHUNK_SIZE = 50
    one_chunk = _queries_for(biller, 50, "S")
    ten_chunks = _queries_for(biller, 500, "L")
    per_extra_chunk = (ten_chunks - one_chunk) / 9
    # About 8 per chunk (look-ups, progress, bulk inserts); one query per row would make it at least 50.
    assert per_extra_chunk <= 12, (one_chunk, ten_chunks)


def test_command_imports_a_file(biller, tmp_path, capsys):
    path = tmp_path / "march.csv"
    path.write_bytes(to_csv([line("B-1", "A-1"), line("B-2", "A-1")]))
    call_command("import_bills", str(path), "--biller", biller.slug, "--dry-run")
    assert "would create 1 accounts and 2 bills" in capsys.readouterr().out
    assert not Bill.objects.exists() and not ImportBatch.objects.exists()

    call_command("import_bills", str(path), "--biller", biller.slug)
    assert "created 1 accounts and 2 bills" in capsys.readouterr().out
    assert Bill.objects.filter(biller=biller, status=Bill.Status.OPEN).count() == 2
    assert ImportBatch.objects.get().filename == "march.csv"


def test_command_fails_with_the_report(biller, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(to_csv([line("B-1", "A-1", due_date="31/01/2025"), line("B-2", "A-2", amount="abc")]))
    before = row_counts()
    with pytest.raises(CommandError) as caught:
        call_command("import_bills", str(path), "--biller", biller.slug)
    report = str(caught.value)
    assert "2 problem(s), nothing was imported" in report
    assert "row 2, due_date" in report and "row 3, amount" in report
    assert row_counts() == before

    with pytest.raises(CommandError, match="No biller"):
        call_command("import_bills", str(path), "--biller", "nobody")


@pytest.fixture
def admin_client_super(client, django_user_model):
    user = django_user_model.objects.create_superuser(email="boss@example.com", password="pw-Admin-123")
    staff_login(client, user)
    return client


def _upload(client, biller, content, name="bills.csv"):
    return client.post(
        reverse("admin:billing_importbatch_upload"),
        {"biller": biller.pk, "file": SimpleUploadedFile(name, content, content_type="text/csv")},
    )


def test_admin_upload_imports_a_small_file_at_once(admin_client_super, biller):
    assert "Upload bills" in admin_client_super.get(reverse("admin:billing_importbatch_changelist")).text
    response = _upload(admin_client_super, biller, to_csv([line("B-1", "A-1"), line("B-2", "A-2")]))
    batch = ImportBatch.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:billing_importbatch_change", args=[batch.pk])
    assert (batch.status, batch.bills_created, batch.accounts_created) == (ImportBatch.Status.SUCCEEDED, 2, 2)
    assert batch.created_by.email == "boss@example.com"

    page = admin_client_super.get(response.url)
    assert page.status_code == 200
    assert "Bills created" in page.text and 'id="import-progress"' not in page.text
    status = admin_client_super.get(reverse("admin:billing_importbatch_status", args=[batch.pk])).json()
    assert (status["done"], status["percent"], status["status"]) == (True, 100, "succeeded")


def test_admin_upload_of_a_large_file_runs_in_the_worker(
    admin_client_super, biller, settings, django_capture_on_commit_callbacks
):
    settings.BILL_IMPORT_CHUNK_SIZE = 2
    with mock.patch.object(bill_import_run_task, "delay") as delay, django_capture_on_commit_callbacks(execute=True):
        response = _upload(admin_client_super, biller, to_csv([line(f"B-{i}", "A-1") for i in range(5)]))
    batch = ImportBatch.objects.get()
    delay.assert_called_once_with(batch.pk)
    assert batch.status == ImportBatch.Status.PENDING and not Bill.objects.exists()

    page = admin_client_super.get(response.url)
    assert 'id="import-progress"' in page.text and "Waiting for a worker" in page.text
    assert admin_client_super.get(reverse("admin:billing_importbatch_status", args=[batch.pk])).json()["done"] is False

    bill_import_run_task.run(batch.pk)
    status = admin_client_super.get(reverse("admin:billing_importbatch_status", args=[batch.pk])).json()
    assert (status["done"], status["processed_rows"], status["total_rows"]) == (True, 5, 5)
    assert Bill.objects.count() == 5


def test_admin_shows_the_problems_of_a_rejected_file(admin_client_super, biller):
    _upload(admin_client_super, biller, to_csv([line("B-1", "A-1", amount="ten")]))
    batch = ImportBatch.objects.get()
    assert batch.status == ImportBatch.Status.FAILED
    page = admin_client_super.get(reverse("admin:billing_importbatch_change", args=[batch.pk]))
    assert "import-errors" in page.text and "“ten” is not an amount" in page.text
    download = admin_client_super.get(reverse("admin:billing_importbatch_errors_csv", args=[batch.pk]))
    assert "2,amount," in download.content.decode("utf-8-sig")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bills.xlsx", b"PK\x03\x04", "Upload a .csv file"),
        ("bills.csv", "account_number,holder_name\nA,Ærø\n".encode("latin-1"), "not UTF-8"),
        ("bills.csv", b"", "empty"),
        ("bills.csv", b"account,name,amount\n1,x,3\n", "header row is not right"),
    ],
)
def test_admin_refuses_a_bad_file_and_saves_nothing(admin_client_super, biller, name, content, message):
    before = row_counts()
    response = _upload(admin_client_super, biller, content, name=name)
    assert response.status_code == 200
    assert message in response.text
    assert not ImportBatch.objects.exists()
    assert row_counts() == before


def test_admin_upload_needs_the_import_permission(client, staff_user, biller):
    staff_login(client, staff_user)
    assert _upload(client, biller, to_csv([line()])).status_code == 403
    assert not ImportBatch.objects.exists()


def test_the_example_in_the_format_guide_imports(biller):
    guide = (Path(__file__).resolve().parents[3] / "docs" / "import-format.md").read_text()
    example = guide.split("```csv\n", 1)[1].split("```", 1)[0]
    batch = run_import(biller, example.encode())
    assert (batch.status, batch.accounts_created, batch.bills_created) == (ImportBatch.Status.SUCCEEDED, 2, 2), (
        batch.errors
    )
    water = Bill.objects.get(number="B-2025-03-001").lines.get(description="Water")
    assert (water.quantity, water.unit_amount, water.amount, water.tax_amount) == (Decimal("12.5"), 250, 3125, 156)
