"""How fast is the bill import? `.venv/bin/python bench/bench_import.py [--rows 10000]`

Builds a throwaway database (a temporary SQLite file, or a fresh database on the DATABASE_URL server), migrates it,
generates a CSV of --rows bill lines, and imports it through the same services the admin and the command use. Side
by side, in the same run and database, it times a bare bulk_create of the same Bill and BillLine rows: the floor
any import has to stand on. The ratio says what checking, accounts and history cost on top.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def csv_content(rows: int) -> bytes:
    """Bills of 1, 2 and 3 lines in turn, two bills per account."""
    out = [
        (
            "account_number,holder_name,postal_code,address_line1,city,email,bill_number,"
            "period_start,period_end,due_date,description,quantity,amount,tax"
        )
    ]
    bill = written = 0
    while written < rows:
        account = bill // 2
        for position in range(min(bill % 3 + 1, rows - written)):
            out.append(
                f"ACC{account:07d},Holder {account},{10000 + account % 89999},{account} Main St,Riverside,"
                f"payer{account}@example.com,BILL{bill:08d},2025-01-01,2025-01-31,2025-02-20,"
                f"Charge {position + 1},{position + 1},{(bill % 500) + position}.25,0.{position}5"
            )
            written += 1
        bill += 1
    return ("\n".join(out) + "\n").encode()


def bare_bulk_create(biller, import_bills) -> float:
    """Insert the Bill and BillLine rows the import made, copied under another biller, with nothing else."""
    from django.db import transaction

    from billing.models import Bill, BillLine, CustomerAccount

    accounts = CustomerAccount.objects.bulk_create(
        CustomerAccount(
            biller=biller, account_number=a.account_number, holder_name=a.holder_name, postal_code=a.postal_code
        )
        for a in CustomerAccount.objects.filter(biller=import_bills[0].biller).order_by("pk")
    )
    account_ids = {a.account_number: a.pk for a in accounts}
    source = list(Bill.objects.filter(pk__in=[b.pk for b in import_bills]).select_related("account").order_by("pk"))
    source_lines = {}
    for line in BillLine.objects.filter(bill__in=source).order_by("bill_id", "position"):
        source_lines.setdefault(line.bill_id, []).append(line)

    started = time.perf_counter()
    with transaction.atomic():
        bills = Bill.objects.bulk_create(
            Bill(
                biller=biller,
                account_id=account_ids[b.account.account_number],
                number=b.number,
                status=b.status,
                period_start=b.period_start,
                period_end=b.period_end,
                issue_date=b.issue_date,
                due_date=b.due_date,
                currency=b.currency,
                subtotal=b.subtotal,
                tax=b.tax,
                total=b.total,
            )
            for b in source
        )
        BillLine.objects.bulk_create(
            BillLine(
                bill=new,
                position=li.position,
                description=li.description,
                quantity=li.quantity,
                unit_amount=li.unit_amount,
                amount=li.amount,
                tax_amount=li.tax_amount,
            )
            for old, new in zip(source, bills, strict=True)
            for li in source_lines[old.pk]
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="billpay-bench-")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ["PRIVATE_STORAGE_ROOT"] = os.path.join(workdir, "private")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir}/bench.sqlite3")

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    # Never the real database: a temporary file, or a database of its own on the server.
    test_name = f"{workdir}/bench.sqlite3" if connection.vendor == "sqlite" else f"bench_billpay_{os.getpid()}"
    connection.settings_dict["TEST"]["NAME"] = test_name
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        from billing.bills.imports import bill_import_batch_create, bill_import_run
        from billing.models import Bill, Biller

        content = csv_content(args.rows)
        biller = Biller.objects.create(name="Bench Water", slug="bench-water", currency="USD")
        bare_biller = Biller.objects.create(name="Bench Bare", slug="bench-bare", currency="USD")

        started = time.perf_counter()
        batch = bill_import_run(batch=bill_import_batch_create(biller=biller, filename="bench.csv", content=content))
        import_seconds = time.perf_counter() - started
        if batch.errors:
            raise SystemExit(f"import rejected the file: {batch.errors[:5]}")
        bare_seconds = bare_bulk_create(bare_biller, list(Bill.objects.filter(import_batch=batch)))

        print(
            f"database: {connection.vendor}; rows: {batch.total_rows}; accounts created: {batch.accounts_created}; "
            f"bills created: {batch.bills_created}; chunk size: {settings.BILL_IMPORT_CHUNK_SIZE}"
        )
        print(
            f"import (CSV to accounts, issued bills, lines, history): {import_seconds:7.2f} s "
            f"{batch.total_rows / import_seconds:9.0f} rows/s"
        )
        print(
            f"bare bulk_create of the same Bill + BillLine rows:        {bare_seconds:7.2f} s "
            f"{batch.total_rows / bare_seconds:9.0f} rows/s"
        )
        print(f"import / bare: {import_seconds / bare_seconds:.1f}x")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
