"""How fast is statement matching? `.venv/bin/python bench/bench_statement.py [--lines 20000]`

Builds a throwaway database (a temporary SQLite file, or a fresh database on the DATABASE_URL server), migrates it,
makes one account with one open bill per line, writes a CSV statement of --lines credits (each quoting its account's
reference; a third pay exactly, a third part, a third more than owed), and imports it through the same services the
admin and the command use (`statement_store`, then `statement_match`, which applies each chunk of lines through the
payment core's batch entry). Side by side, in the same run and database, it times a bare bulk_create of the same
Payment rows: the floor any matcher stands on. It also prints the queries of each chunk, which must not grow with the
statement (on each connection: on PostgreSQL `statement_match` matches chunks on STATEMENT_MATCH_CONNECTIONS
connections at once, `--connections N` to change it). With --receipts the accounts have e-mail addresses, so each
transfer's receipt is written to the outbox too (one batch per chunk); without, as in the first measurements, nobody
is told.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--receipts", action="store_true", help="give the accounts e-mail addresses (receipts)")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the import + match (not the bare insert) into FILE")
    parser.add_argument("--connections", type=int, default=None,
                        help="STATEMENT_MATCH_CONNECTIONS (PostgreSQL; default: the setting's, 2)")  # fmt: skip
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="billpay-bench-")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ["PRIVATE_STORAGE_ROOT"] = os.path.join(workdir, "private")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir}/bench.sqlite3")
    os.environ["VAR_DIR"] = os.path.join(workdir, "var")  # the file broker's queue: the receipts' send tasks land here
    for folder in ("queue", "processed", "control"):
        os.makedirs(os.path.join(workdir, "var", "broker", folder), exist_ok=True)

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection, transaction
    from django.db.backends.signals import connection_created

    if args.connections is not None:
        settings.STATEMENT_MATCH_CONNECTIONS = args.connections

    test_name = f"{workdir}/bench.sqlite3" if connection.vendor == "sqlite" else f"bench_billpay_{os.getpid()}"
    connection.settings_dict["TEST"]["NAME"] = test_name
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        import datetime as dt

        from billing.banking import statements
        from billing.models import Bill, Biller, CustomerAccount, Payment

        n = args.lines
        biller = Biller.objects.create(name="Bench Water", slug="bench-water", currency="USD")
        accounts = CustomerAccount.objects.bulk_create(
            CustomerAccount(biller=biller, account_number=f"A{i:08d}", holder_name=f"Holder {i}", postal_code="1",
                            email=f"payer{i}@example.com" if args.receipts else "")
            for i in range(n)
        )
        today = dt.date.today()
        Bill.objects.bulk_create(
            Bill(biller=biller, account=a, number=f"B{i:08d}", status=Bill.Status.OPEN, period_start=today,
                 period_end=today, issue_date=today, due_date=today, currency="USD", subtotal=10000, total=10000)
            for i, a in enumerate(accounts)
        )  # fmt: skip
        rows = ["entry_id,booking_date,amount,currency,payer_name,payer_account,remittance,end_to_end_id,kind"]
        for i, account in enumerate(accounts):
            amount = ("100.00", "40.00", "130.00")[i % 3]
            rows.append(f"E{i:09d},{today},{amount},USD,Holder {i},,Bill payment {account.bank_reference},,transfer")
        content = ("\n".join(rows) + "\n").encode()

        queries, helper_queries = [0], [0]

        def count(execute, sql, params, many, context):
            queries[0] += 1
            return execute(sql, params, many, context)

        def count_helper(execute, sql, params, many, context):
            helper_queries[0] += 1
            return execute(sql, params, many, context)

        def helper_connected(sender, connection, **kwargs):  # statement_match's helper threads' connections
            connection.execute_wrappers.append(count_helper)

        connection_created.connect(helper_connected)

        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
        with connection.execute_wrapper(count):
            if profiler:
                profiler.enable()
            started = time.perf_counter()
            statement = statements.statement_store(biller=biller, filename="bench.csv", content=content)
            marks = [queries[0]]

            def progress(done):
                marks.append(queries[0])

            statement = statements.statement_match(statement=statement, progress=progress)
            match_seconds = time.perf_counter() - started
            if profiler:
                profiler.disable()
                profiler.dump_stats(args.profile)
        connection_created.disconnect(helper_connected)
        chunk_queries = [b - a for a, b in zip(marks, marks[1:])]
        helper_chunks = -(-n // statements.CHUNK_SIZE) - len(chunk_queries)
        report = statement.report

        payments = list(Payment.objects.filter(channel=Payment.Channel.BANK_TRANSFER).order_by("pk"))
        started = time.perf_counter()
        with transaction.atomic():
            Payment.objects.bulk_create(
                Payment(biller_id=p.biller_id, account_id=p.account_id, confirmation_number=p.confirmation_number + "X",
                        channel=p.channel, method=p.method, status=p.status, currency=p.currency, amount=p.amount,
                        reference=p.reference, idempotency_key=p.idempotency_key + "-bare", received_at=p.received_at,
                        payment_method_summary=p.payment_method_summary)
                for p in payments
            )  # fmt: skip
        bare_seconds = time.perf_counter() - started

        from notifications.models import Notification

        print(f"database: {connection.vendor}; lines: {n}; chunk size: {statements.CHUNK_SIZE}; "
              f"receipts in the outbox: {Notification.objects.count()}")  # fmt: skip
        print("report: " + statements.report_lines(report)[-1])
        # The first chunk also counts the run's two opening queries (status, lines already done); the last may be short.
        full = chunk_queries[1:-1] or chunk_queries
        matching = settings.STATEMENT_MATCH_CONNECTIONS if connection.vendor == "postgresql" else 1
        print(f"matching connections: {matching}; "
              f"queries per chunk of {statements.CHUNK_SIZE} lines, its receipts included, on the run's own "
              f"connection: min {min(full)}, max {max(full)}, {max(full) / statements.CHUNK_SIZE:.2f} per line; every "
              f"chunk: {chunk_queries}")  # fmt: skip
        if helper_chunks:
            print(f"on the helper connections: {helper_chunks} chunks, {helper_queries[0]} queries "
                  f"({helper_queries[0] / helper_chunks:.1f} a chunk)")  # fmt: skip
        print(f"import + match (store lines, reference, apply, history): {match_seconds:7.2f} s "
              f"{n / match_seconds:9.0f} lines/s")  # fmt: skip
        print(f"bare bulk_create of the same Payment rows:               {bare_seconds:7.2f} s "
              f"{len(payments) / bare_seconds:9.0f} lines/s")  # fmt: skip
        print(f"matching speed / bare speed: {(n / match_seconds) / (len(payments) / bare_seconds):.3f}x (aim: 0.3x)")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
