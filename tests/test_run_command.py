"""The README's run command, for real: web, Celery worker and beat start on the embedded defaults, the portal and
the admin answer, and SIGTERM stops every process it started."""

import base64
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_run_command_starts_everything_and_sigterm_stops_it(tmp_path):
    port = free_port()
    env = {
        k: v for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"} and not k.startswith("STRIPE_")
    }
    env.update(PORT=str(port), VAR_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    log = open(tmp_path / "run.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "scripts/run.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        home = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                home = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.5)
        output = (tmp_path / "run.log").read_text()
        assert home is not None, output
        assert "Pay a bill" in home
        admin = urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=5)
        assert admin.status == 200
        # Wait for the worker and beat to report in, so the stop below really stops three processes.
        while time.monotonic() < deadline and not ("ready." in output and "beat: Starting" in output):
            time.sleep(0.5)
            output = "".join(
                (tmp_path / name).read_text() for name in ("run.log", "logs/worker.log", "logs/beat.log")
                if (tmp_path / name).exists()
            )
        assert "ready." in output and "beat: Starting" in output, output
        # The banner is the last thing on the console: the worker and beat log to VAR_DIR/logs/.
        console = (tmp_path / "run.log").read_text()
        assert "ready." not in console and "beat: Starting" not in console
        assert "Worker and beat logs:" in console
        assert f"http://localhost:{port}/" in output
        assert "Staff login:" in output and "Demo accounts" in output
        assert (tmp_path / "billpay.sqlite3").exists()
        children = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) >= 5, children  # run.py + localstripe + web + worker + beat
        base = re.search(r"Stripe: localstripe at (http://127\.0\.0\.1:\d+)", output).group(1)
        assert urllib.request.urlopen(f"{base}/js.stripe.com/v3/", timeout=5).status == 200
        # localstripe keeps its objects under VAR_DIR, so a restart of the demo does not forget them (issue 10).
        sys.path.insert(0, str(ROOT / "scripts"))
        from localstripe_server import DEFAULT_API_KEY, list_objects

        created = urllib.request.Request(
            f"{base}/v1/customers", data=b"email=kept%40example.com",
            headers={"Authorization": "Basic " + base64.b64encode(f"{DEFAULT_API_KEY}:".encode()).decode()},
        )  # fmt: skip
        assert urllib.request.urlopen(created, timeout=5).status == 200
        assert [c["email"] for c in list_objects(base, "/v1/customers")] == ["kept@example.com"]
        assert (tmp_path / "localstripe.pickle").exists()

        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        time.sleep(0.5)
        assert not group_alive(proc.pid), "a process the run command started is still running"
    finally:
        if group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
