"""Start the portal for local use: migrate, seed demo data, then run web, Celery worker and Celery beat together,
and localstripe (a local stand-in for Stripe's API and stripe.js) unless real Stripe keys are in the environment.

Ctrl-C or SIGTERM stops every process it started; if one of them dies, the others are stopped too. The worker and beat
log to VAR_DIR/logs/, so the banner (logins, demo accounts, where e-mails go), printed once the web server answers,
stays on screen.
DATABASE_URL and REDIS_URL, when set, are passed through to every process (PostgreSQL and Redis instead of the
embedded SQLite and folder broker).
"""

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def manage(*args: str, capture: bool = False) -> str:
    result = subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=True, text=True, capture_output=capture)
    return result.stdout if capture else ""


LOCALSTRIPE_SECRET = "whsec_billpay_local_run"


def uses_real_stripe() -> bool:
    key = os.environ.get("STRIPE_SECRET_KEY", "")
    return key.startswith(("sk_live_", "sk_test_")) and "localstripe" not in key


def start_localstripe(web_port: int, var: Path) -> tuple[subprocess.Popen, str]:
    """Start localstripe on a free loopback port with our webhook registered; return it and its base URL. Its
    objects are kept in VAR_DIR, like the database: a restart of the demo must not forget the intents that the
    database's payments point at."""
    proc = subprocess.Popen(
        [
            PY, "scripts/localstripe_server.py", "--port", os.environ.get("LOCALSTRIPE_PORT", "0"),
            "--webhook-url", f"http://127.0.0.1:{web_port}/stripe/webhook/", "--webhook-secret", LOCALSTRIPE_SECRET,
            "--state-file", str(var / "localstripe.pickle"),
        ],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline().strip()
    if not line.startswith("localstripe ready at "):
        proc.terminate()
        raise SystemExit(f"localstripe did not start: {line!r}")
    # Keep draining its output so a full pipe can never stall it.
    threading.Thread(target=lambda: [sys.stdout.write(chunk) for chunk in proc.stdout], daemon=True).start()
    return proc, line.removeprefix("localstripe ready at ")


def wait_until_answering(url: str, *, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.3)


def main() -> int:
    # The local settings, explicitly: config/wsgi.py and the Celery app default to production.
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    port = int(os.environ.get("PORT", "8000"))
    os.environ.setdefault("SITE_URL", f"http://localhost:{port}")
    var = Path(os.environ.get("VAR_DIR", ROOT / "var"))
    for folder in ("queue", "processed", "control"):
        (var / "broker" / folder).mkdir(parents=True, exist_ok=True)

    manage("migrate", "--noinput", "-v", "0")
    manage("setup_roles", "-v", "0")
    seeded = manage("seed_demo", capture=True)
    # Beat runs the hourly planner first an hour after it starts; plan reminders now so the demo has them at once.
    manage("notifications_due", "--plan", capture=True)

    celery = [PY, "-m", "celery", "-A", "config"]
    commands = {
        "web": [PY, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        "worker": [*celery, "worker", "--loglevel", "INFO", "--pool", "solo", "--without-gossip", "--without-mingle"],
        "beat": [*celery, "beat", "--loglevel", "INFO", "--schedule", str(var / "celerybeat-schedule")],
    }
    children: dict[str, subprocess.Popen] = {}
    stopping = False
    if uses_real_stripe():
        stripe_note = "Stripe: real API (keys from the environment)"
    else:
        children["localstripe"], base = start_localstripe(port, var)
        os.environ.update(
            STRIPE_API_BASE=base,
            STRIPE_SECRET_KEY="sk_test_localstripe",
            STRIPE_PUBLISHABLE_KEY="pk_test_localstripe",
            STRIPE_WEBHOOK_SECRET=LOCALSTRIPE_SECRET,
            STRIPE_JS_URL=f"{base}/js.stripe.com/v3/",
        )
        stripe_note = f"Stripe: localstripe at {base} (pay with card 4242 4242 4242 4242, any future date, any CVC)"

    def stop(*_):
        nonlocal stopping
        if stopping:
            return
        stopping = True
        for proc in children.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for proc in children.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()

    signal.signal(signal.SIGTERM, lambda *a: (stop(), sys.exit(0)))
    signal.signal(signal.SIGINT, lambda *a: (stop(), sys.exit(0)))
    logs = var / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for name, command in commands.items():
        # The worker and beat are chatty; their logs go to files so they never bury the banner.
        output = None if name == "web" else open(logs / f"{name}.log", "a")  # noqa: SIM115 - closed at exit
        children[name] = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT if output else None)
    wait_until_answering(f"http://127.0.0.1:{port}/")

    database = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else f"SQLite ({var})"
    broker = "Redis" if os.environ.get("REDIS_URL") else f"folder broker ({var / 'broker'})"
    print(
        f"\nBillpay is starting on http://localhost:{port}/  (staff admin: http://localhost:{port}/admin/)\n"
        f"Database: {database} · Celery broker: {broker}\n{stripe_note}\n"
        f"Worker and beat logs: {logs / 'worker.log'}, {logs / 'beat.log'}\n{seeded}\nPress Ctrl-C to stop.\n",
        flush=True,
    )
    try:
        while True:
            for name, proc in children.items():
                if proc.poll() is not None:
                    print(f"{name} exited with status {proc.returncode}; stopping the rest.", file=sys.stderr)
                    stop()
                    return proc.returncode or 1
            time.sleep(0.5)
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
