"""How fast does autopay charge? `.venv/bin/python bench/bench_autopay.py [--charges 200] [--backlog 1000 --workers 2]`

Builds a throwaway database (a fresh database on the DATABASE_URL server, or a temporary SQLite file), starts
localstripe (scripts/localstripe_server.py) and seeds payers with a card saved at localstripe, autopay on, and one bill
due today. Then, side by side in one run and against the same localstripe:
  - autopay: the planner, one sweep, and `autopay_charge_batch` on the claimed rows, AUTOPAY_CHARGE_BATCH_SIZE at a
    time as the sweep's tasks carry them, in this process (one worker), and the receipts of each chunk raised the
    way the notifications sweep raises them (receipts_raise_batched);
  - bare: the Stripe SDK creating and confirming an off-session PaymentIntent on the same kind of card, nothing else
    (the two calls autopay makes: it creates the intent and stores its id before confirming);
alternating in chunks, and prints charges per second for each, the ratio, and the queries per charge (Django counts
each transaction's BEGIN and COMMIT there too: three pairs a batch). `--breakdown` also prints where a charge's time
went: SQL statements, commits, HTTP, the rate limiter and the rest (Python), without a profiler's overhead.

With --backlog N it then clears a backlog: N rows due at once, one sweep, and --workers processes running
`autopay_charge_batch` on the claimed rows' batches (what Celery workers do, minus the broker), and prints how long the backlog took
against a beat period (60 s) and the most gateway requests granted in any one second against
GATEWAY_RATE_LIMIT_PER_SECOND (--rate-limit; the limit is shared through Redis when REDIS_URL is set, else the cache
of one machine's processes would not be shared and the script says so).
"""

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}


def sdk_client():
    import stripe
    from django.conf import settings

    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY, base_addresses={"api": settings.STRIPE_API_BASE}, max_network_retries=0
    )


def saved_card(client) -> tuple[str, str]:
    """A customer and an attached card at localstripe: (customer id, payment method id)."""
    customer = client.v1.customers.create(params={"email": "bench@example.com"})
    method = client.v1.payment_methods.create(params={"type": "card", "card": CARD})
    client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
    return customer.id, method.id


def seed(count: int, *, prefix: str) -> None:
    """`count` payers, each with a saved card, autopay on and one bill due today."""
    import datetime as dt

    from django.utils import timezone

    from accounts.models import User
    from billing.models import AutopayEnrollment, Bill, Biller, CustomerAccount, PaymentMethod

    biller = Biller.objects.filter(slug="bench-water").first() or Biller.objects.create(
        name="Bench Water", slug="bench-water", currency="USD"
    )
    client, today, now = sdk_client(), dt.date.today(), timezone.now()
    for i in range(count):
        user = User.objects.create_user(email=f"{prefix}{i}@example.com", password="A-bench-Passw0rd!")
        account = CustomerAccount.objects.create(
            biller=biller, account_number=f"{prefix}-{i:05d}", holder_name="Jane Smith", postal_code="12345",
            email=user.email,
        )  # fmt: skip
        customer_id, method_id = saved_card(client)
        card = PaymentMethod.objects.create(
            user=user, gateway_customer_id=customer_id, gateway_payment_method_id=method_id, brand="visa",
            last4="4242", exp_month=12, exp_year=2034, is_default=True,
        )  # fmt: skip
        AutopayEnrollment.objects.create(
            account=account, user=user, payment_method=card, charge_rule="on_due_date", currency="USD",
            consent_text="I agree.", consented_at=now, payment_method_summary="Visa •••• 4242",
        )  # fmt: skip
        Bill.objects.create(
            biller=biller, account=account, number=f"{prefix}-B{i:05d}", status=Bill.Status.OPEN,
            period_start=today - dt.timedelta(days=30), period_end=today, issue_date=today, due_date=today,
            currency="USD", subtotal=4200, total=4200,
        )  # fmt: skip


def claim_all() -> list[int]:
    """Plan, then one sweep as beat would run it an hour after the charge hour."""
    import datetime as dt

    from django.utils import timezone

    from billing.autopay.planning import autopay_plan, autopay_sweep

    autopay_plan()
    return autopay_sweep(now=timezone.now() + dt.timedelta(days=1), enqueue=False).claimed


def bare_charges(cards: list[tuple[str, str]]) -> None:
    client = sdk_client()
    for customer_id, method_id in cards:
        intent = client.v1.payment_intents.create(
            params={"amount": 4200, "currency": "usd", "customer": customer_id, "payment_method": method_id}
        )
        # off_session is a real-Stripe-only parameter: the gateway leaves it out for localstripe, and so does this.
        confirmed = client.v1.payment_intents.confirm(intent.id)
        assert confirmed.status == "succeeded", confirmed.status


def charge_worker(ids, granted) -> None:
    """One worker process: charge the rows it takes from the queue; note the second of every gateway slot granted."""
    from django.db import connections

    from billing.autopay.charging import autopay_charge_batch
    from billing.payments import stripe_gateway

    connections.close_all()  # a fresh connection in this process
    take_slot = stripe_gateway.rate_limit_slot_take
    windows = []

    def counted(scope, per_second):
        window = take_slot(scope, per_second)
        windows.append(window)
        return window

    stripe_gateway.rate_limit_slot_take = counted  # bench instrumentation only: counts what the limiter granted
    outcomes = Counter()
    try:
        while (batch := ids.get()) is not None:
            outcomes.update(autopay_charge_batch(charge_ids=batch).values())
    finally:
        granted.put((windows, outcomes))


def bare_worker(cards, done) -> None:
    """One bare worker process: the SDK loop on these cards, nothing else (no database, no rate limit)."""
    began = time.perf_counter()
    bare_charges(cards)
    done.put(time.perf_counter() - began)


def breakdown_install(spent: Counter):
    """Time the parts of the one-worker phase into `spent` (seconds): SQL statements (execute, as the database
    driver sees them), commits, the SDK's HTTP requests, the rate limiter. Returns a function that undoes it."""
    import stripe
    from django.db import connection, connections

    from billing.payments import stripe_gateway

    def timed(into, fn):
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[into] += time.perf_counter() - began

        return wrapper

    def sql(execute, sql, params, many, context):
        spent["statements"] += 1
        return timed("sql", execute)(sql, params, many, context)

    wrapper = connection.execute_wrapper(sql)
    wrapper.__enter__()
    backend, requests_client = type(connections["default"]), stripe._http_client.RequestsClient
    saved = backend._commit, requests_client.request, stripe_gateway.rate_limit_slot_take
    backend._commit = timed("commit", saved[0])
    requests_client.request = timed("http", saved[1])
    stripe_gateway.rate_limit_slot_take = timed("rate limit", saved[2])

    def undo():
        wrapper.__exit__(None, None, None)
        backend._commit, requests_client.request, stripe_gateway.rate_limit_slot_take = saved

    return undo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charges", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--backlog", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate-limit", type=int, default=None, help="GATEWAY_RATE_LIMIT_PER_SECOND for the backlog")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="run the one-worker autopay phase under cProfile and print the N heaviest functions")
    parser.add_argument("--breakdown", action="store_true",
                        help="time the one-worker phase's parts (SQL statements, commits, HTTP, rate limiter), "
                             "without a profiler's overhead")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="billpay-bench-")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ["VAR_DIR"] = workdir  # the folder broker the receipts are enqueued to, when there is no REDIS_URL
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir}/bench.sqlite3")
    for folder in ("queue", "processed", "control"):
        os.makedirs(os.path.join(workdir, "broker", folder), exist_ok=True)

    from tests.stripe_support import SECRET_KEY, LocalstripeProcess

    localstripe = LocalstripeProcess()
    url = localstripe.start()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.STRIPE_API_BASE, settings.STRIPE_SECRET_KEY, settings.STRIPE_LIVE_API = url, SECRET_KEY, False
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    if settings.REDIS_URL:  # the shared cache, as in production: the rate limit holds across processes
        settings.CACHES = {"default": {"BACKEND": "config.cache.RedisCache",
                                       "LOCATION": settings.REDIS_URL}}  # fmt: skip
    test_name = f"{workdir}/bench.sqlite3" if connection.vendor == "sqlite" else f"bench_billpay_{os.getpid()}"
    connection.settings_dict["TEST"]["NAME"] = test_name
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        from billing.autopay.charging import autopay_charge_batch
        from billing.models import AutopayCharge
        from notifications.receipts import receipts_raise_batched

        seed(args.charges, prefix="ONE")
        ids = claim_all()
        client = sdk_client()
        bare_cards = [saved_card(client) for _ in range(args.charges)]
        ours = bare = 0.0
        batch = settings.AUTOPAY_CHARGE_BATCH_SIZE
        queries = receipts = 0
        spent = Counter()
        if args.breakdown:
            undo = breakdown_install(spent)
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
        for start in range(0, len(ids), args.chunk):
            chunk = ids[start : start + args.chunk]
            with CaptureQueriesContext(connection) as seen:
                began = time.perf_counter()
                if profiler:
                    profiler.enable()
                for start_batch in range(0, len(chunk), batch):  # the sweeper's batch tasks
                    outcomes = autopay_charge_batch(charge_ids=chunk[start_batch : start_batch + batch])
                    assert set(outcomes.values()) == {"succeeded"}, outcomes
                # Autopay's receipts are raised in batches by the notifications sweep: counted here, per chunk.
                receipts += receipts_raise_batched()
                if profiler:
                    profiler.disable()
                ours += time.perf_counter() - began
            queries += len(seen.captured_queries)
            http_before = spent["http"]
            began = time.perf_counter()
            bare_charges(bare_cards[start : start + args.chunk])
            bare += time.perf_counter() - began
            spent["bare http"] += spent["http"] - http_before
            spent["http"] = http_before
        n = len(ids)
        print(f"database: {connection.vendor}; localstripe {url}; {n} charges each, alternating in chunks of {args.chunk}")
        print(f"autopay (plan, sweep, charge task body, one worker): {n / ours:7.1f} charges/s")
        print(f"bare SDK create + confirm off-session:               {n / bare:7.1f} charges/s")
        print(f"autopay / bare: {bare / ours:.2f}x")
        print(f"queries per charge (receipt outbox included, {receipts} receipts raised): {queries / n:.1f}")
        if args.breakdown:
            undo()
            ms = lambda seconds: f"{seconds / n * 1000:.2f} ms"  # noqa: E731
            parts = ("sql", "commit", "http", "rate limit")
            print(
                f"per charge: autopay {ms(ours)} = SQL statements {ms(spent['sql'])} ({spent['statements'] / n:.1f}), "
                f"commits {ms(spent['commit'])}, gateway HTTP {ms(spent['http'])}, rate limiter "
                f"{ms(spent['rate limit'])}, the rest (Python: ORM, SDK objects, ours) "
                f"{ms(ours - sum(spent[p] for p in parts))}; bare {ms(bare)} = HTTP {ms(spent['bare http'])} + "
                f"{ms(bare - spent['bare http'])}"
            )
        if profiler:
            import pstats

            print("autopay, one worker, under cProfile (its overhead slows it; the shares are what count):")
            profiler.dump_stats(dump := os.path.join(tempfile.gettempdir(), f"bench_autopay_{os.getpid()}.prof"))
            print(f"(the whole profile: {dump}; read it with pstats or snakeviz)")
            stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
            stats.sort_stats("cumulative").print_stats(args.profile)
            stats.sort_stats("tottime").print_stats(args.profile)

        if args.backlog:
            if args.rate_limit is not None:
                settings.GATEWAY_RATE_LIMIT_PER_SECOND = args.rate_limit
            limit = settings.GATEWAY_RATE_LIMIT_PER_SECOND
            if not settings.REDIS_URL:
                print("no REDIS_URL: the worker processes do not share the rate limit's counter (set REDIS_URL)")
            seed(args.backlog, prefix="LOG")
            began = time.perf_counter()
            backlog = claim_all()
            swept = time.perf_counter() - began
            connection.close()
            context = multiprocessing.get_context("fork")
            queue, granted = context.Queue(), context.Queue()
            size = settings.AUTOPAY_CHARGE_BATCH_SIZE
            for start in range(0, len(backlog), size):  # as the sweep enqueues them: batch tasks
                queue.put(backlog[start : start + size])
            for _ in range(args.workers):
                queue.put(None)
            workers = [context.Process(target=charge_worker, args=(queue, granted)) for _ in range(args.workers)]
            began = time.perf_counter()
            for worker in workers:
                worker.start()
            windows, outcomes = Counter(), Counter()
            for _ in workers:
                worker_windows, worker_outcomes = granted.get()
                windows.update(worker_windows)
                outcomes.update(worker_outcomes)
            for worker in workers:
                worker.join()
            cleared = time.perf_counter() - began
            left = AutopayCharge.objects.filter(status=AutopayCharge.Status.CHARGING).count()
            print(
                f"backlog: {len(backlog)} due rows claimed by one sweep in {swept:.1f} s; {args.workers} workers "
                f"charged them in {cleared:.1f} s ({len(backlog) / cleared:.1f} charges/s; a beat period is 60 s); "
                f"{left} left charging; outcomes {dict(outcomes)}"
            )
            print(
                f"gateway requests: {sum(windows.values())}, at most {max(windows.values())} in one second "
                f"(limit {limit}/s, shared through {'Redis' if settings.REDIS_URL else 'a per-process cache'})"
            )
            # The ceiling: the bare SDK loop in as many processes, on the backlog's own cards (localstripe now holds
            # as many objects as it did for the backlog; it is one single-threaded Python process and slows as its
            # store grows).
            from billing.models import PaymentMethod

            cards = list(
                PaymentMethod.objects.filter(autopay_enrollments__account__account_number__startswith="LOG-")
                .values_list("gateway_customer_id", "gateway_payment_method_id")
            )
            connection.close()
            done = context.Queue()
            shares = [cards[i :: args.workers] for i in range(args.workers)]
            began = time.perf_counter()
            bare_workers = [context.Process(target=bare_worker, args=(share, done)) for share in shares]
            for worker in bare_workers:
                worker.start()
            for _ in bare_workers:
                done.get()
            for worker in bare_workers:
                worker.join()
            bare_cleared = time.perf_counter() - began
            print(
                f"bare SDK loop on the same {len(cards)} cards, {args.workers} processes: {bare_cleared:.1f} s "
                f"({len(cards) / bare_cleared:.1f} charges/s); autopay's backlog / bare: {bare_cleared / cleared:.2f}x"
            )
    finally:
        connection.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)
        localstripe.stop()


if __name__ == "__main__":
    main()
