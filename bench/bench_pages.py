"""How heavy are the payer pages? `.venv/bin/python bench/bench_pages.py [--seconds 3] [--rounds 3] [--profile]`

Builds a throwaway database on the DATABASE_URL server (PostgreSQL; SQLite works but says little), seeds a biller, a
guest account with 1 open bill, one with 200 open bills, and a payer with three linked accounts and a long history
(400 bills and 100 payments each), then serves the project with gunicorn (one sync worker) on a free port in
BENCH_PORTS (default 8300-8399), with a bare Django view (`bench/pages_urls.py`) under the same settings and
middleware, and the issue's reference "toy page" (one query, a 20-row template). wrk (Debian's `wrk`) drives the
bare view and each page alternately, --rounds times, and the script
prints each page's requests per second as a ratio of the bare view's measured beside it. The payer pages are served from
the page cache (billing/pagecache.py) after their first two requests, as a page opened again is; PAGE_CACHE_SECONDS=0
measures every request rendered. Every request (the bare view's too) sends the cookies a returning browser sends: its
CSRF cookie, and the session of a guest or payer page. `--profile` instead runs each page in-process under cProfile (after two requests:
the pages as served from the cache) and prints where the time goes. Set CONN_MAX_AGE=0 to see the cost of a new
database connection per request.
"""

import argparse
import cProfile
import io
import os
import pstats
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAGES = [  # (name, path, session)
    ("reference: toy page, 1 query, 20 rows", "/bench/toy/", None),
    ("home /", "/", None),
    ("lookup /pay/", "/pay/", None),
    ("guest pay screen, 1 bill", "/pay/account/", "guest_one"),
    ("guest pay screen, 200 open bills", "/pay/account/", "guest_many"),
    ("dashboard /me/", "/me/", "payer"),
]


def seed() -> dict[str, str]:
    """The data, and a session cookie value per kind of visitor."""
    import datetime as dt

    from allauth.account.models import EmailAddress
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connection
    from django.test import Client

    from accounts.models import AccountLink, User
    from accounts.services import account_link_grant
    from billing.models import Bill, BillLine, Biller, CustomerAccount, Payment
    from billing.payments import lookup

    biller = Biller.objects.create(name="Bench Water", slug="bench-water", currency="USD")
    today = dt.date.today()

    def account(number: str) -> CustomerAccount:
        return CustomerAccount.objects.create(
            biller=biller, account_number=number, holder_name="Jane Smith", postal_code="12345",
            email=f"{number.lower()}@example.com",
        )  # fmt: skip

    def bills(acct, count, *, open_count):
        made = Bill.objects.bulk_create(
            Bill(
                biller=biller, account=acct, number=f"{acct.account_number}-{i:05d}",
                status=Bill.Status.OPEN if i >= count - open_count else Bill.Status.PAID,
                period_start=today - dt.timedelta(days=30 * (count - i) + 30),
                period_end=today - dt.timedelta(days=30 * (count - i)), issue_date=today,
                due_date=today + dt.timedelta(days=i - count + 20), currency="USD", subtotal=1000 + i, total=1000 + i,
                amount_paid=0 if i >= count - open_count else 1000 + i,
            )  # fmt: skip
            for i in range(count)
        )
        BillLine.objects.bulk_create(BillLine(bill=b, description="Water", amount=b.total) for b in made)

    def guest_session(acct) -> str:
        session = SessionStore()
        session[lookup.GRANT_SESSION_KEY] = {"account_id": acct.pk, "expires_at": 2**40}
        session.save()
        return session.session_key

    one, many = account("ONE-1"), account("MANY-200")
    bills(one, 1, open_count=1)
    bills(many, 200, open_count=200)

    user = User.objects.create_user(email="payer@example.com", password="A-bench-Passw0rd!")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    for n in range(3):
        acct = account(f"HIST-{n}")
        bills(acct, 400, open_count=2)
        account_link_grant(user=user, account=acct, via=AccountLink.Via.LOOKUP)
        Payment.objects.bulk_create(
            Payment(
                biller=biller, account=acct, confirmation_number=f"BP-BENCH{n}{i:04d}", channel="guest_web",
                method="card", status="succeeded", currency="USD", amount=1000, payer_email="payer@example.com",
            )  # fmt: skip
            for i in range(100)
        )
    with connection.cursor() as cursor:
        # Fresh statistics and, on PostgreSQL, the visibility map a live database's autovacuum keeps, without which
        # no index can answer alone (this machine's PostgreSQL runs with autovacuum off).
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return {"guest_one": guest_session(one), "guest_many": guest_session(many), "payer": client.cookies["sessionid"].value}


def free_port() -> int:
    low, high = (int(p) for p in os.environ.get("BENCH_PORTS", "8300-8399").split("-"))
    for port in range(low, high + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit(f"no free port in {low}-{high}")


# The CSRF cookie a browser that has been here before sends back (a secret as Django makes them), so that a page opened
# again is measured as one: without it every response would make a new secret and set it again.
CSRF_COOKIE = None


def cookies(session: str | None) -> str:
    global CSRF_COOKIE
    if CSRF_COOKIE is None:
        from django.utils.crypto import get_random_string

        CSRF_COOKIE = get_random_string(32)
    return f"csrftoken={CSRF_COOKIE}" + (f"; sessionid={session}" if session else "")


def wrk(url: str, seconds: int, cookie: str | None) -> float:
    command = ["wrk", "-t1", "-c1", f"-d{seconds}s", "-H", f"Cookie: {cookies(cookie)}", url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"{url} answered with errors:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def fetch(base: str, path: str, cookie: str | None) -> bytes:
    request = urllib.request.Request(base + path, headers={"Cookie": cookies(cookie)})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    response = urllib.request.build_opener(NoRedirect).open(request, timeout=30)
    if response.status != 200:
        raise SystemExit(f"{path} answered {response.status}")
    return response.read()


def profile(sessions: dict[str, str], repeat: int = 30) -> None:
    from django.conf import settings
    from django.test import Client

    for name, path, who in PAGES:
        if path.startswith("/bench/"):
            continue  # the references are served by bench/pages_urls.py, not in-process
        client = Client()
        if who:
            client.cookies[settings.SESSION_COOKIE_NAME] = sessions[who]
        for _ in range(2):  # the first request records the page's queries, the second stores it: profile the hits
            assert client.get(path).status_code == 200, path
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(repeat):
            client.get(path)
        profiler.disable()
        print(f"\n===== {name} ({path}), {repeat} requests in-process =====")
        for order, restriction in (("tottime", 20), ("cumulative", 45)):
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).sort_stats(order)
            stats.print_stats(restriction, 20) if isinstance(restriction, str) else stats.print_stats(restriction)
            print("\n".join(line for line in out.getvalue().splitlines() if re.match(r"\s+[\d/]+\s", line)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile each page in-process instead of serving it")
    parser.add_argument("--only", default="", help="only the pages whose name contains this")
    args = parser.parse_args()
    PAGES[:] = [page for page in PAGES if args.only in page[0]]
    if not args.profile and not shutil.which("wrk"):
        raise SystemExit("needs wrk: apt-get install -y wrk")

    workdir = tempfile.mkdtemp(prefix="billpay-bench-")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir}/bench.sqlite3")

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    # Never the real database: a temporary file, or a database of its own on the server.
    test_name = f"{workdir}/bench.sqlite3" if connection.vendor == "sqlite" else f"bench_billpay_{os.getpid()}"
    connection.settings_dict["TEST"]["NAME"] = test_name
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    server = None
    try:
        sessions = seed()
        if args.profile:
            profile(sessions)
            return
        connection.close()  # the server's worker is the only client while measuring
        port = free_port()
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.pages_settings", "BENCH_DATABASE_NAME": test_name,
               "PYTHONPATH": str(ROOT)}  # fmt: skip
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "-w", "1", "-b", f"127.0.0.1:{port}", "--log-level",
             "warning"],
            cwd=ROOT, env=env,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                fetch(base, "/bench/bare/", None)
                break
            except OSError:
                time.sleep(0.1)
        sizes = {name: len(fetch(base, path, sessions.get(who))) for name, path, who in PAGES}
        results = {name: [0.0, 0.0] for name, _path, _who in PAGES}
        for _ in range(args.rounds):
            for name, path, who in PAGES:
                cookie = sessions.get(who)
                results[name][0] += wrk(base + "/bench/bare/", args.seconds, cookie)
                results[name][1] += wrk(base + path, args.seconds, cookie)
        print(
            f"database: {connection.vendor}; CONN_MAX_AGE={settings.DATABASES['default']['CONN_MAX_AGE']}; "
            f"gunicorn 1 sync worker; wrk 1 connection, {args.seconds:g} s per run, {args.rounds} rounds, alternating"
        )
        print(f"{'page':36} {'bare req/s':>10} {'page req/s':>10} {'ratio':>6} {'size':>8}")
        for name, (bare, page) in results.items():
            print(
                f"{name:36} {bare / args.rounds:10.0f} {page / args.rounds:10.0f} {page / bare:6.3f}x "
                f"{sizes[name] / 1024:6.1f}KB"
            )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
