"""Run localstripe (a fake Stripe API, dev/test only) on the loopback interface.

    python scripts/localstripe_server.py --port 8420 [--webhook-url URL --webhook-secret whsec_...] [--state-file F]

Why not the stock `localstripe` command: it binds to all interfaces and rewrites /tmp/localstripe.pickle after every
write (slow, and two instances clobber each other). This launcher serves localstripe's own aiohttp app on 127.0.0.1
with the pickle dump switched off, so every start is empty; or, with `--state-file`, kept in that file of the
caller's own (the run command puts it under VAR_DIR), so a restart of the demo loses no customer, card or intent.

It also makes localstripe's cards behave like Stripe's documented test cards (`stripe_test_cards`): a number typed
with spaces or dashes is read as its digits, and the common decline cards decline when charged, with Stripe's
error code and decline code, instead of succeeding.

`--port 0` lets the OS pick a free port. Once the API answers (and the webhook, if asked, is registered) it prints one
line to stdout, flushed, that callers wait for:

    localstripe ready at http://127.0.0.1:PORT

localstripe is GPL-3.0: it is only ever run as this separate process, never imported by the portal. The helpers
`wait_until_ready` and `register_webhook` use the standard library only, so other tools (the run command, the test
fixtures) can import them without importing localstripe.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

READY_PREFIX = "localstripe ready at "
# Any key that starts with sk_ passes localstripe's authentication.
DEFAULT_API_KEY = "sk_test_localstripe"
DEFAULT_WEBHOOK_ID = "billpay"


def _auth_header(api_key: str) -> str:
    return "Basic " + base64.b64encode(f"{api_key}:".encode()).decode()


def wait_until_ready(base_url: str, *, timeout: float = 15.0, api_key: str = DEFAULT_API_KEY) -> None:
    """Poll GET /v1/balance until localstripe answers 200; raise TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(
        base_url.rstrip("/") + "/v1/balance", headers={"Authorization": _auth_header(api_key)}
    )
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last_error = exc
        time.sleep(0.05)
    raise TimeoutError(f"localstripe at {base_url} did not answer within {timeout}s: {last_error}")


def register_webhook(
    base_url: str, *, url: str, secret: str, events: list[str] | None = None, webhook_id: str = DEFAULT_WEBHOOK_ID
) -> None:
    """Ask localstripe to POST signed events to `url` (POST /_config/webhooks/<id>).

    Registering the same id again replaces it. Registrations survive DELETE /_config/data. `events` empty or None
    means all events."""
    fields: list[tuple[str, str]] = [("url", url), ("secret", secret)]
    fields += [("events[]", event) for event in events or []]
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/_config/webhooks/{urllib.parse.quote(webhook_id, safe='')}",
        data=urllib.parse.urlencode(fields).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        if response.status != 200:
            raise RuntimeError(f"localstripe refused the webhook registration: HTTP {response.status}")


def flush(base_url: str) -> None:
    """Delete every object (DELETE /_config/data). Webhook registrations are kept."""
    request = urllib.request.Request(base_url.rstrip("/") + "/_config/data", method="DELETE")
    with urllib.request.urlopen(request, timeout=5):
        pass


def list_objects(base_url: str, path: str, *, api_key: str = DEFAULT_API_KEY, **query) -> list[dict]:
    """GET a list endpoint such as /v1/payment_intents and return its `data` (all pages; localstripe keeps few)."""
    items: list[dict] = []
    params = {"limit": "100", **{k: str(v) for k, v in query.items()}}
    while True:
        request = urllib.request.Request(
            f"{base_url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}",
            headers={"Authorization": _auth_header(api_key)},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            page = json.load(response)
        items += page["data"]
        if not page.get("has_more") or not page["data"]:
            return items
        params["starting_after"] = page["data"][-1]["id"]


# Stripe's documented test cards that decline when charged: number → (error code, decline code, message).
# (localstripe itself declines these only when attached to a customer, with "card_declined" and no decline code;
# that stays as it is.)
TEST_CARD_DECLINES = {
    "4000000000000002": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "4000000000000069": ("expired_card", "expired_card", "Your card has expired."),
}


def _digits(number):
    return "".join(ch for ch in number if ch not in " -") if isinstance(number, str) else number


def stripe_test_cards(resources) -> None:
    """Patch localstripe's resources module (in this process only) so its cards behave like Stripe's test cards."""
    from localstripe.errors import UserError

    payment_method_init, card_init = resources.PaymentMethod.__init__, resources.Card.__init__

    def payment_method_with_digits(self, *args, card=None, **kwargs):
        if isinstance(card, dict) and "number" in card:
            card = {**card, "number": _digits(card["number"])}
        payment_method_init(self, *args, card=card, **kwargs)

    def card_with_digits(self, source=None, **kwargs):
        if isinstance(source, dict) and "number" in source:
            source = {**source, "number": _digits(source["number"])}
        card_init(self, source=source, **kwargs)

    resources.PaymentMethod.__init__ = payment_method_with_digits
    resources.Card.__init__ = card_with_digits

    # Card._charging_is_declined calls PaymentMethod's, so one patch covers both kinds of card id.
    charging_is_declined = resources.PaymentMethod._charging_is_declined

    def charging_is_declined_like_stripe(self):
        return getattr(self, "_card_number", None) in TEST_CARD_DECLINES or charging_is_declined(self)

    resources.PaymentMethod._charging_is_declined = charging_is_declined_like_stripe

    def decline_of(charge):
        try:
            source = resources.PaymentMethod._api_retrieve(charge.payment_method)
        except UserError:
            return None
        return TEST_CARD_DECLINES.get(getattr(source, "_card_number", None))

    set_auth_failure = resources.Charge._set_auth_failure

    def set_auth_failure_like_stripe(self):
        set_auth_failure(self)
        decline = decline_of(self)
        if decline:
            self.failure_code, self._decline_code, self.failure_message = decline

    def raise_failure_like_stripe(self):
        error = {"code": self.failure_code, "charge": self.id}
        if getattr(self, "_decline_code", None):
            error["decline_code"] = self._decline_code
        raise UserError(402, self.failure_message, error)

    resources.Charge._set_auth_failure = set_auth_failure_like_stripe
    resources.Charge._raise_failure = raise_failure_like_stripe

    last_payment_error = resources.PaymentIntent.last_payment_error

    def last_payment_error_like_stripe(self):
        error = last_payment_error.fget(self)
        decline_code = getattr(self.latest_charge, "_decline_code", None) if self.latest_charge else None
        if error and decline_code and "charge" in error:
            error = {**error, "decline_code": decline_code}
        return error

    resources.PaymentIntent.last_payment_error = property(last_payment_error_like_stripe)


def keep_state_in(store, path: str) -> None:
    """Load the store from `path` if it exists, and write it back there (atomically) after every change."""
    import pickle

    try:
        with open(path, "rb") as saved:
            dict.update(store, pickle.load(saved))  # dict's own update: no dump per item while loading
    except FileNotFoundError:
        pass
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        print(f"localstripe: ignoring unreadable state in {path}: {exc}", file=sys.stderr, flush=True)

    def dump() -> None:
        partial = f"{path}.partial"
        with open(partial, "wb") as out:
            pickle.dump(dict(store), out, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, path)

    store.dump_to_disk = dump


def _announce_when_ready(base_url: str, args: argparse.Namespace) -> None:
    try:
        wait_until_ready(base_url)
        if args.webhook_url:
            register_webhook(
                base_url,
                url=args.webhook_url,
                secret=args.webhook_secret,
                events=[e for e in args.webhook_events.split(",") if e],
                webhook_id=args.webhook_id,
            )
    except Exception as exc:  # noqa: BLE001 - report any start-up failure, then stop the server
        print(f"localstripe failed to start: {exc}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    print(READY_PREFIX + base_url, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8420, help="0 picks a free port and prints it")
    parser.add_argument("--webhook-url", help="where localstripe should POST events, e.g. http://127.0.0.1:8000/...")
    parser.add_argument("--webhook-secret", help="whsec_... used to sign deliveries; required with --webhook-url")
    parser.add_argument("--webhook-events", default="", help="comma-separated event types; empty means all")
    parser.add_argument("--webhook-id", default=DEFAULT_WEBHOOK_ID)
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr")
    parser.add_argument("--state-file", help="keep localstripe's objects in this file across restarts")
    args = parser.parse_args(argv)
    if args.webhook_url and not args.webhook_secret:
        parser.error("--webhook-url needs --webhook-secret")

    # Imported here so that importing the helpers above never loads localstripe.
    import logging

    from aiohttp import web
    from localstripe import resources, server

    stripe_test_cards(resources)
    # An instance attribute shadows Store.dump_to_disk, which Store.__setitem__/__delitem__ and the server's
    # save-store middleware call after every write.
    if args.state_file:
        keep_state_in(server.store, args.state_file)
    else:
        server.store.dump_to_disk = lambda: None

    # Bind the socket ourselves so that --port 0 works and the real port is known before serving.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    host, port = sock.getsockname()[:2]
    base_url = f"http://{host}:{port}"

    access_log = None
    if args.access_log:
        access_log = logging.getLogger("aiohttp.access")
        access_log.setLevel(logging.INFO)
        access_log.addHandler(logging.StreamHandler(sys.stderr))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    threading.Thread(target=_announce_when_ready, args=(base_url, args), daemon=True).start()
    web.run_app(server.app, sock=sock, print=None, access_log=access_log, handle_signals=True)


if __name__ == "__main__":
    main()
