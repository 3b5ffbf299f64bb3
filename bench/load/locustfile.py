"""The load mix against the cluster (bench/load/run_load.py starts locust with this file, headless and bounded):

- PayScreens: e-bill pay links opening the pay screen;
- Lookups: the account lookup, one in four with a wrong account number;
- Dashboards: signed-in payers on /me/ and their account and bill pages;
- Payers: whole payments through the Stripe stand-in, as pay.js does them (start, confirm with a card, return);
- WebhookBursts: the same signed `payment_intent.succeeded` event delivered several times in a row, as Stripe
  does after a timeout.

Every simulated payer comes from its own address (X-Forwarded-For, believed because nginx is a trusted proxy), as
real payers do, so per-address rate limits count each one apart. LOAD_DATA names the JSON from bench/load/seed.py.
"""

import hashlib
import hmac
import json
import os
import random
import re
import threading
import time

from locust import HttpUser, between, task

DATA = json.load(open(os.environ["LOAD_DATA"]))
WEBHOOK_SECRET = os.environ["LOAD_WEBHOOK_SECRET"]
LOCALSTRIPE = os.environ["LOAD_LOCALSTRIPE"]
CERT = os.environ["LOAD_CERT"]
_pay_accounts = list(DATA["pay"])
_paid_intents: list[str] = []
_lock = threading.Lock()
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def random_address() -> str:
    return f"198.18.{random.randint(0, 255)}.{random.randint(1, 254)}"  # the benchmarking range (RFC 2544)


class BillpayUser(HttpUser):
    abstract = True
    wait_time = between(0.5, 2)

    def on_start(self):
        self.client.verify = CERT
        self.client.headers["X-Forwarded-For"] = random_address()
        self.client.headers["Referer"] = self.host + "/"

    def csrf_from(self, response) -> str:
        match = CSRF.search(response.text)
        return match.group(1) if match else self.client.cookies.get("csrftoken", "")


class PayScreens(BillpayUser):
    weight = 3

    @task
    def pay_link(self):
        item = random.choice(DATA["browse"])
        with self.client.get(
            f"/pay/b/{item['token']}/", name="/pay/b/[token]/ -> pay screen", catch_response=True
        ) as r:
            if r.status_code != 200 or "/pay/account/" not in r.url:
                r.failure(f"pay link did not open the pay screen: {r.status_code} {r.url}")


class Lookups(BillpayUser):
    weight = 3

    @task
    def lookup(self):
        self.client.headers["X-Forwarded-For"] = random_address()
        page = self.client.get("/pay/", name="/pay/ (form)")
        wrong = random.random() < 0.25
        item = random.choice(DATA["lookup"])
        number = f"0{random.randint(10**8, 10**9 - 1)}" if wrong else item["account_number"]
        form = {
            "csrfmiddlewaretoken": self.csrf_from(page),
            "account_number": number,
            "postal_code": item["postal_code"],
        }
        name = "/pay/ (wrong lookup)" if wrong else "/pay/ (lookup)"
        with self.client.post("/pay/", form, name=name, catch_response=True) as r:
            found = r.status_code == 200 and "/pay/account/" in r.url
            if wrong == found or r.status_code != 200:
                r.failure(f"lookup answered {r.status_code} at {r.url} (wrong={wrong})")


class Dashboards(BillpayUser):
    weight = 2

    def on_start(self):
        super().on_start()
        self.payer = random.choice(DATA["payers"])
        page = self.client.get("/accounts/login/", name="/accounts/login/ (form)")
        form = {"csrfmiddlewaretoken": self.csrf_from(page), "login": self.payer["email"], "password": DATA["password"]}
        with self.client.post("/accounts/login/", form, name="/accounts/login/", catch_response=True) as r:
            if "/me/" not in r.url:
                r.failure(f"sign-in did not reach the dashboard: {r.status_code} {r.url}")

    @task(3)
    def dashboard(self):
        self.client.get("/me/", name="/me/")

    @task(2)
    def account(self):
        self.client.get(f"/me/accounts/{self.payer['account_id']}/", name="/me/accounts/[id]/")

    @task(1)
    def bill(self):
        self.client.get(f"/me/bills/{self.payer['bill_id']}/", name="/me/bills/[id]/")


class Payers(BillpayUser):
    weight = 2

    @task
    def pay(self):
        with _lock:
            if not _pay_accounts:
                self.stop()  # every seeded bill is paid: this payer is done
                return
            item = _pay_accounts.pop()
        self.client.headers["X-Forwarded-For"] = random_address()
        screen = self.client.get(f"/pay/b/{item['token']}/", name="pay: open the pay screen")
        csrf = self.csrf_from(screen)
        form = {
            "csrfmiddlewaretoken": csrf,
            "amount_choice": "full",
            "receipt_email": f"load{item['account_id']}@example.com",
        }
        headers = {"X-CSRFToken": csrf}
        with self.client.post(
            "/pay/account/start/", form, headers=headers, name="pay: start", catch_response=True
        ) as r:
            if r.status_code != 200:
                r.failure(f"start answered {r.status_code}: {r.text[:200]}")
                return
            intent = r.json()["paymentIntent"]
        confirm = {"payment_intent": intent, "payment_method": "pm_card_visa"}
        with self.client.post(
            "/pay/account/confirm/", confirm, headers=headers, name="pay: confirm", catch_response=True
        ) as r:
            if r.status_code != 200 or r.json().get("status") != "succeeded":
                r.failure(f"confirm answered {r.status_code}: {r.text[:200]}")
                return
            following = r.json()["next"]
        with self.client.get(following, name="pay: return -> receipt", catch_response=True) as r:
            if r.status_code != 200 or "/pay/receipt/" not in r.url:
                r.failure(f"no receipt: {r.status_code} {r.url}")
                return
        with _lock:
            _paid_intents.append(intent)


class WebhookBursts(BillpayUser):
    weight = 1
    wait_time = between(2, 4)

    @task
    def burst(self):
        with _lock:
            intent_id = random.choice(_paid_intents) if _paid_intents else None
        if intent_id is None:
            return
        import urllib.request

        request = urllib.request.Request(
            f"{LOCALSTRIPE}/v1/payment_intents/{intent_id}", headers={"Authorization": "Bearer sk_test_localstripe"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            intent = json.load(response)
        event = {
            "id": f"evt_burst_{intent_id}_{random.randint(0, 10**9)}", "object": "event",
            "type": "payment_intent.succeeded", "created": int(time.time()), "livemode": False,
            "api_version": "2020-08-27", "data": {"object": intent},
        }  # fmt: skip
        body = json.dumps(event)
        for _ in range(5):  # the same event, five deliveries: stored once, applied once, each answered 200
            stamp = int(time.time())
            signature = hmac.new(WEBHOOK_SECRET.encode(), f"{stamp}.{body}".encode(), hashlib.sha256).hexdigest()
            self.client.post(
                "/stripe/webhook/", data=body, name="webhook burst",
                headers={"Content-Type": "application/json", "Stripe-Signature": f"t={stamp},v1={signature}"},
            )  # fmt: skip
