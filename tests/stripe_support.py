"""Test helpers for the Stripe boundary: a localstripe process, a webhook receiver, and Stripe-signed payloads.

The fixtures that use these live in tests/billing/conftest.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from scripts.localstripe_server import READY_PREFIX, flush, list_objects, register_webhook, wait_until_ready

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "scripts" / "localstripe_server.py"
SECRET_KEY = "sk_test_x"  # localstripe accepts any key that starts with sk_
PUBLISHABLE_KEY = "pk_test_x"
WEBHOOK_SECRET = "whsec_test_billpay"

__all__ = [
    "LocalstripeProcess",
    "WebhookReceiver",
    "flush",
    "payment_intents",
    "register_webhook",
    "sign_webhook_payload",
    "wait_until_ready",
]


class LocalstripeProcess:
    """localstripe in a child process on a free loopback port (the launcher binds port 0 and reports the port)."""

    def __init__(self, *, start_timeout: float = 20.0, extra_args: tuple[str, ...] = ()):
        self.start_timeout = start_timeout
        self.extra_args = extra_args
        self.url: str | None = None
        self._process: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="localstripe-", suffix=".log", delete=False)

    def start(self) -> str:
        self._process = subprocess.Popen(
            [sys.executable, str(LAUNCHER), "--port", "0", *self.extra_args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=ROOT,
        )
        line = self._read_ready_line()
        self.url = line.removeprefix(READY_PREFIX).strip()
        return self.url

    def _read_ready_line(self) -> str:
        # readline() blocks; read in a thread so a hung start fails after start_timeout instead of hanging the run.
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self._process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.start_timeout)
        line = result[0] if result else ""
        if not line.startswith(READY_PREFIX):
            self.stop()
            raise RuntimeError(f"localstripe did not start (log: {self._log.name}): {self.log_tail()}")
        return line

    def log_tail(self, size: int = 2000) -> str:
        return Path(self._log.name).read_text(errors="replace")[-size:]

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        if self._process and self._process.stdout:
            self._process.stdout.close()
        self._log.close()
        os.unlink(self._log.name)


def payment_intents(base_url: str, **query) -> list[dict]:
    """Every PaymentIntent localstripe holds (GET /v1/payment_intents): for "charged exactly once" assertions.

    localstripe rejects list filters such as customer=; filter the result in the test instead."""
    return list_objects(base_url, "/v1/payment_intents", api_key=SECRET_KEY, **query)


def sign_webhook_payload(payload: bytes | str, secret: str, *, timestamp: int | None = None) -> str:
    """A Stripe-Signature header value for `payload`: t=<unix time>,v1=<HMAC-SHA256 of "t.payload">."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    body = payload.encode() if isinstance(payload, str) else payload
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


@dataclass
class Delivery:
    body: bytes
    signature: str | None

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """A loopback HTTP server that records what localstripe POSTs to it (answers 200 to everything)."""

    deliveries: list[Delivery] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/stripe/webhook/"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._arrived:
                    receiver.deliveries.append(Delivery(body, self.headers.get("Stripe-Signature")))
                    receiver._arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def wait_for(self, event_type: str, *, object_id: str | None = None, timeout: float = 5.0) -> Delivery:
        """The first delivery of `event_type` (about object `object_id`, if given); localstripe sends about 1 s after
        the change. Pass `object_id`: a delivery scheduled by the previous test can arrive at this test's receiver."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for delivery in self.deliveries:
                    event = delivery.event
                    if event.get("type") != event_type:
                        continue
                    if object_id is None or event.get("data", {}).get("object", {}).get("id") == object_id:
                        return delivery
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [d.event.get("type") for d in self.deliveries]
                    raise TimeoutError(f"no {event_type} webhook within {timeout}s; got {seen}")
                self._arrived.wait(remaining)

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
