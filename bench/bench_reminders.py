"""How fast is reminder planning? `.venv/bin/python bench/bench_reminders.py [--bills 100000]`

Builds a throwaway database (a temporary SQLite file, or a fresh database on the DATABASE_URL server), migrates it and
bulk-creates --bills open bills, one per account, with due dates spread so that every bill has a reminder step due
today (due in 5 days, due today, 3 and 10 days late; a fifth of the accounts also take SMS). Then it reports:

- planning at 25%, 50% and 100% of the bills: time, rows/s, and peak Python memory (tracemalloc), which must stay flat
  because the planner walks bills by keyset in chunks;
- the queries each chunk costs, which must be the same for every chunk;
- side by side in the same run and database, a bare bulk_create of exactly the rows the planner wrote: the floor the
  planner stands on. The ratio says what choosing kinds, channels and times costs on top.
"""

import argparse
import datetime as dt
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DUE_OFFSETS = (5, 0, -3, -10)  # days from today to the due date: steps -5, 0, 3 and 10 are due today


def seed(bills: int, today: dt.date):
    from django.db import transaction

    from billing.models import Bill, Biller, CustomerAccount

    biller = Biller.objects.create(name="Bench Water", slug="bench-water", currency="USD")
    with transaction.atomic():
        accounts = CustomerAccount.objects.bulk_create(
            (
                CustomerAccount(
                    biller=biller,
                    account_number=f"A{i:08d}",
                    holder_name=f"Holder {i}",
                    postal_code="90210",
                    email=f"payer{i}@example.com",
                    phone=f"+1555{i:07d}",
                    sms_notices=i % 5 == 0,
                )  # fmt: skip
                for i in range(bills)
            ),
            batch_size=2000,
        )
        Bill.objects.bulk_create(
            (
                Bill(
                    biller=biller,
                    account=account,
                    number=f"B{i:08d}",
                    status=Bill.Status.OPEN,
                    period_start=today - dt.timedelta(days=60),
                    period_end=today - dt.timedelta(days=30),
                    issue_date=today - dt.timedelta(days=40),
                    due_date=today + dt.timedelta(days=DUE_OFFSETS[i % 4]),
                    currency="USD",
                    subtotal=5000,
                    tax=0,
                    total=5000,
                )  # fmt: skip
                for i, account in enumerate(accounts)
            ),
            batch_size=2000,
        )
    return biller


def only_first_open(n: int) -> None:
    """Leave the first n bills open and park the rest as drafts, so one database serves every size."""
    from billing.models import Bill
    from notifications.models import Notification

    Notification.objects.all().delete()
    first = list(Bill.objects.order_by("pk").values_list("pk", flat=True)[n - 1 : n])
    Bill.objects.filter(pk__lte=first[0]).update(status=Bill.Status.OPEN)
    Bill.objects.filter(pk__gt=first[0]).update(status=Bill.Status.DRAFT)
    from django.db import connection

    if connection.vendor == "postgresql":
        # Production tables have fresh statistics (autovacuum); after these mass changes the bench's would be stale
        # and full of dead rows, and PostgreSQL would plan the per-chunk lookups as if the tables were empty.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE billing_bill, billing_customeraccount, notifications_notification")


def plan(today, now, chunk_size, *, measure_memory: bool):
    from notifications.planner import reminders_plan

    if measure_memory:
        tracemalloc.start()
    started = time.perf_counter()
    result = reminders_plan(today=today, now=now, chunk_size=chunk_size)
    seconds = time.perf_counter() - started
    peak = 0
    if measure_memory:
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return result, seconds, peak


def bare_bulk_create(chunk_size: int) -> tuple[int, float]:
    """The planner's rows, read back, deleted, and inserted again with nothing but bulk_create in the same chunks."""
    from django.db import transaction

    from notifications.models import Notification
    from notifications.planner import insert_batch_size

    fields = [f.attname for f in Notification._meta.concrete_fields if f.attname != "id"]
    rows = [Notification(**values) for values in Notification.objects.order_by("pk").values(*fields)]
    Notification.objects.all().delete()
    started = time.perf_counter()
    for i in range(0, len(rows), chunk_size * 3):  # about what a chunk of bills writes
        with transaction.atomic():
            Notification.objects.bulk_create(rows[i : i + chunk_size * 3], batch_size=insert_batch_size())
    return len(rows), time.perf_counter() - started


def main() -> None:
    # A stopped bench still drops its throwaway database: SIGTERM runs the `finally` below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bills", type=int, default=100_000)
    parser.add_argument("--chunk-size", type=int, default=500)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="billpay-bench-")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ["PRIVATE_STORAGE_ROOT"] = os.path.join(workdir, "private")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir}/bench.sqlite3")

    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    # Never the real database: a temporary file, or a database of its own on the server.
    test_name = f"{workdir}/bench.sqlite3" if connection.vendor == "sqlite" else f"bench_billpay_{os.getpid()}"
    connection.settings_dict["TEST"]["NAME"] = test_name
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        from notifications.models import Notification
        from notifications.planner import reminders_plan

        now = timezone.now()
        today = now.date()
        started = time.perf_counter()
        seed(args.bills, today)
        print(f"database: {connection.vendor}; {args.bills} open bills seeded in {time.perf_counter() - started:.1f} s; "
              f"chunk size {args.chunk_size}")  # fmt: skip

        # tracemalloc slows Python down several times, so time and memory are measured in separate runs.
        sizes = sorted({max(args.bills // 4, 1), max(args.bills // 2, 1), args.bills})
        for n in sizes:
            only_first_open(n)
            _result, _seconds, peak = plan(today, now, args.chunk_size, measure_memory=True)
            only_first_open(n)
            result, seconds, _peak = plan(today, now, args.chunk_size, measure_memory=False)
            written = Notification.objects.count()
            print(
                f"plan {n:>7} bills: {seconds:7.2f} s  {written:>7} rows written ({result.rows} new)  "
                f"{written / seconds:8.0f} rows/s  {n / seconds:8.0f} bills/s  peak memory {peak / 2**20:6.1f} MiB"
            )
            if n == sizes[0]:
                # Queries per chunk when the rows are new (the inserts included), on the smallest size.
                only_first_open(n)
                first = reminders_plan(today=today, now=now, chunk_size=args.chunk_size, count_queries=True)
                first_per_chunk, first_chunks = sorted(set(first.queries_per_chunk)), first.chunks
        planner_seconds, planner_rows = seconds, written

        # Same data again: everything exists, so this measures a re-run (dedupe by the unique key) and counts queries.
        started = time.perf_counter()
        counted = reminders_plan(today=today, now=now, chunk_size=args.chunk_size, count_queries=True)
        rerun = time.perf_counter() - started
        per_chunk = sorted(set(counted.queries_per_chunk))
        print(f"re-plan (all rows exist): {rerun:.2f} s, {Notification.objects.count()} rows (unchanged)")
        for label, values, chunks in (
            ("first plan", first_per_chunk, first_chunks),
            ("re-plan", per_chunk, counted.chunks),
        ):
            print(f"queries per chunk of {args.chunk_size} bills, {label}: {values} over {chunks} chunks"
                  f"{'  (constant)' if len(values) == 1 else '  (NOT constant)'}")  # fmt: skip

        rows, bare_seconds = bare_bulk_create(args.chunk_size)
        assert rows == planner_rows
        print(f"bare bulk_create of the same {rows} Notification rows: {bare_seconds:7.2f} s "
              f"{rows / bare_seconds:8.0f} rows/s")  # fmt: skip
        print(f"planner / bare: {planner_seconds / bare_seconds:.1f}x")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
