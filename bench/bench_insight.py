"""How fast is the staff insight page at a real biller's size? `.venv/bin/python bench/bench_insight.py [--bills 100000]`

Meant for PostgreSQL (set DATABASE_URL to the server; it makes a throwaway database of its own there and drops it
after; without DATABASE_URL it falls back to a temporary SQLite file and says so). It bulk-creates --bills bills over
the last 12 months on a quarter as many accounts, with payments on every channel for most of them, reminders, refunds,
paperless and autopay enrolments, and autopay charges with retries and backup-card tries. Then, in the same run and
database, it measures:

- the page, /admin/insight/ for "the last 12 months", with the cache emptied first: server time (median of 3) and
  the number of queries;
- the same page again within the cache's few minutes;
- beside them, a bare COUNT(*) over the same biller's bills: the floor any figure about those bills stands on.

It also prints PostgreSQL's plan for the page's heaviest query, so the indexes of billing/0015_insight can be checked.
"""

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHUNK = 5_000


def seed(bills: int, today: dt.date):
    """Bills, payments, allocations, notices and autopay rows, bulk-written in chunks. Returns the biller."""
    import random

    from django.contrib.auth import get_user_model
    from django.db import transaction

    from billing.models import (
        AutopayCharge, AutopayChargeTry, AutopayEnrollment, Bill, Biller, CustomerAccount, PaperlessEnrollment,
        Payment, PaymentAllocation, PaymentMethod, Refund,
    )  # fmt: skip
    from notifications.models import Notification

    rng = random.Random(15)
    biller = Biller.objects.create(name="Bench Water", slug="bench-water", currency="USD", time_zone="UTC")
    other = Biller.objects.create(name="Other Water", slug="other-water", currency="USD")  # noise the page must skip
    payer = get_user_model().objects.create_user(email="bench-payer@example.com", password="pw-Bench-123")
    card = PaymentMethod.objects.create(user=payer, gateway_customer_id="cus_b", gateway_payment_method_id="pm_b",
                                        is_default=True)  # fmt: skip
    accounts_total = max(1, bills // 4)
    with transaction.atomic():
        accounts = CustomerAccount.objects.bulk_create(
            (CustomerAccount(biller=biller if i % 10 else other, account_number=f"B{i:08d}", holder_name=f"H{i}",
                             postal_code="92501") for i in range(accounts_total)),
            batch_size=CHUNK,
        )  # fmt: skip
        now = dt.datetime.combine(today, dt.time(12), tzinfo=dt.timezone.utc)
        PaperlessEnrollment.objects.bulk_create(
            (PaperlessEnrollment(account=a, email="p@example.com", consent_text="x", via="portal",
                                 consented_at=now - dt.timedelta(days=rng.randint(0, 400))) for a in accounts[::3]),
            batch_size=CHUNK,
        )  # fmt: skip
        enrolments = AutopayEnrollment.objects.bulk_create(
            (AutopayEnrollment(account=a, user=payer, payment_method=card, charge_rule="on_due_date", currency="USD",
                               status="active", consent_text="x", payment_method_summary="Visa",
                               consented_at=now - dt.timedelta(days=rng.randint(0, 400)), status_changed_at=now)
             for a in accounts[1::8]),
            batch_size=CHUNK,
        )  # fmt: skip
    by_account = {e.account_id: e for e in enrolments}
    channels = ["guest_web", "portal", "autopay", "staff_offline"]
    made = 0
    while made < bills:
        size = min(CHUNK, bills - made)
        with transaction.atomic():
            rows = []
            for n in range(made, made + size):
                account = accounts[n % accounts_total]
                issued = today - dt.timedelta(days=rng.randint(0, 364))
                total = rng.randint(20, 200) * 100
                paid = rng.random() < 0.85
                rows.append(Bill(
                    biller_id=account.biller_id, account=account, number=f"N{n:09d}", status="paid" if paid else "open",
                    period_start=issued, period_end=issued, issue_date=issued,
                    due_date=issued + dt.timedelta(days=21), currency="USD", subtotal=total, total=total,
                    amount_paid=total if paid else 0,
                ))  # fmt: skip
            rows = Bill.objects.bulk_create(rows)
            payments, pairs, notices = [], [], []
            for b in rows:
                sent = dt.datetime.combine(b.issue_date, dt.time(9), tzinfo=dt.timezone.utc)
                notices.append(Notification(
                    dedupe_key=f"b:{b.number}:issued", biller_id=b.biller_id, account_id=b.account_id, bill=b,
                    kind="bill_issued", channel="email", status="sent", send_at=sent, sent_at=sent,
                ))  # fmt: skip
                if b.amount_paid:
                    received = sent + dt.timedelta(days=rng.randint(1, 30))
                    channel = rng.choice(channels)
                    payments.append(Payment(
                        biller_id=b.biller_id, account_id=b.account_id, confirmation_number=f"P{b.number}",
                        channel=channel, method="cash" if channel == "staff_offline" else "card", status="succeeded",
                        currency="USD", amount=b.total, received_at=received,
                    ))  # fmt: skip
                    pairs.append(b)
                    if received > sent + dt.timedelta(days=24):
                        moment = sent + dt.timedelta(days=24)
                        notices.append(Notification(
                            dedupe_key=f"b:{b.number}:past3", biller_id=b.biller_id, account_id=b.account_id, bill=b,
                            kind="past_due", channel="email", step=3, status="sent", send_at=moment, sent_at=moment,
                        ))  # fmt: skip
            payments = Payment.objects.bulk_create(payments)
            PaymentAllocation.objects.bulk_create(
                PaymentAllocation(payment=p, bill=b, amount=b.total) for p, b in zip(payments, pairs)
            )
            Notification.objects.bulk_create(notices)
            Refund.objects.bulk_create(
                Refund(payment=p, amount=100, currency="USD", reason="bench", status="succeeded",
                       idempotency_key=f"r-{p.confirmation_number}")
                for p in payments[::50]
            )  # fmt: skip
            charges, tries, failed = [], [], []
            for p, b in zip(payments, pairs):
                enrolment = by_account.get(b.account_id)
                if p.channel != "autopay" or enrolment is None:
                    continue
                retried = rng.random() < 0.2
                charges.append(AutopayCharge(
                    bill=b, enrollment=enrolment, account_id=b.account_id, status="succeeded", charge_on=b.due_date,
                    attempt_number=2 if retried else 1, currency="USD", amount=p.amount, payment=p,
                    first_failed_at=p.received_at - dt.timedelta(days=1) if retried else None,
                    last_decline_class="soft" if retried else "",
                ))  # fmt: skip
                if retried:
                    failed.append(Payment(
                        biller_id=b.biller_id, account_id=b.account_id, confirmation_number=f"F{b.number}",
                        channel="autopay", method="card", status="failed", currency="USD", amount=p.amount,
                    ))  # fmt: skip
                tries.append((charges[-1], p, failed[-1] if retried else None))
            failed = {f.confirmation_number: f for f in Payment.objects.bulk_create(failed)}
            AutopayCharge.objects.bulk_create(charges)
            AutopayChargeTry.objects.bulk_create(
                [AutopayChargeTry(charge=c, attempt_number=2 if f else 1, method_role="default", payment_method=card,
                                  payment=p, outcome="succeeded") for c, p, f in tries]
                + [AutopayChargeTry(charge=c, attempt_number=1, method_role="default", payment_method=card, payment=f,
                                    outcome="declined", decline_class="soft") for c, _p, f in tries if f]
            )  # fmt: skip
        made += size
    return biller


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bills", type=int, default=100_000)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="billpay-bench-")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ["PRIVATE_STORAGE_ROOT"] = os.path.join(workdir, "private")
    if "DATABASE_URL" not in os.environ:
        print("DATABASE_URL is not set: using a temporary SQLite file (the issue asks for PostgreSQL).")
        os.environ["DATABASE_URL"] = f"sqlite:///{workdir}/bench.sqlite3"

    import django

    django.setup()
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    setup_test_environment()
    test_name = f"{workdir}/bench.sqlite3" if connection.vendor == "sqlite" else f"bench_billpay_{os.getpid()}"
    connection.settings_dict["TEST"]["NAME"] = test_name
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.core.management import call_command

        from billing.clock import biller_today
        from billing.models import Bill, Biller, Payment
        from notifications.models import Notification
        from tests.staff_support import staff_login

        started = time.perf_counter()
        today = dt.date.today()
        biller = seed(args.bills, today)
        seeded = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # fresh statistics, as a live database has
        call_command("setup_roles", verbosity=0)
        clerk = get_user_model().objects.create_user(email="bench-clerk@example.com", password="pw-Bench-123", is_staff=True)
        clerk.groups.add(Group.objects.get(name="Clerk"))
        client = staff_login(Client(), clerk)
        url = f"/admin/insight/?biller={biller.pk}&period=last_12_months"
        client.get(url)  # warm the Python side (templates, translations)

        page_times, page_queries = [], 0
        for _ in range(3):
            cache.clear()
            with CaptureQueriesContext(connection) as queries:
                t0 = time.perf_counter()
                response = client.get(url)
                page_times.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.status_code
            page_queries = len(queries)
            heaviest = max(queries.captured_queries, key=lambda q: float(q["time"]))
        t0 = time.perf_counter()
        client.get(url)
        cached = time.perf_counter() - t0

        count_times = []
        for _ in range(3):
            t0 = time.perf_counter()
            bill_count = Bill.objects.filter(biller=biller).count()
            count_times.append(time.perf_counter() - t0)

        page, count = statistics.median(page_times), statistics.median(count_times)
        print(
            f"database: {connection.vendor}; bills: {Bill.objects.count()} ({bill_count} for the page's biller); "
            f"payments: {Payment.objects.count()}; notices: {Notification.objects.count()}; "
            f"billers: {Biller.objects.count()}; seeded in {seeded:.1f} s; today: {biller_today(biller)}"
        )
        print(f"insight page, last 12 months, cache empty: {page * 1000:8.1f} ms  {page_queries} queries (median of 3)")
        print(f"insight page again, from the cache:        {cached * 1000:8.1f} ms")
        print(f"bare COUNT(*) over the same biller's bills: {count * 1000:8.1f} ms  1 query")
        print(f"page / COUNT(*): {page / count:.1f}x")
        print(f"heaviest query ({float(heaviest['time']) * 1000:.0f} ms): {heaviest['sql'][:300]}…")
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN " + heaviest["sql"])
                print("its plan:\n  " + "\n  ".join(row[0] for row in cursor.fetchall()[:25]))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
