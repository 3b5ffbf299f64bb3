"""The shared rate limits (billing/ratelimit.py): the gateway's requests-per-second limit, held by two worker
processes at once through real Redis, and taken by every Stripe request."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import IN_CI

WORKER = """
import json, os, sys
import django
django.setup()
from billing.ratelimit import rate_limit_slot_take
windows = [rate_limit_slot_take(sys.argv[1], int(sys.argv[2])) for _ in range(int(sys.argv[3]))]
print(json.dumps(windows))
"""


def test_two_worker_processes_together_stay_under_the_rate_limit():
    """Two processes take gateway slots at once through the shared Redis cache: no second holds more than the limit,
    and each process alone would have taken its slots faster than that."""
    redis_url = settings.REDIS_URL or os.environ.get("REDIS_URL", "")
    if not redis_url:
        if IN_CI:
            pytest.fail("CI must prove the rate limit on real Redis (REDIS_URL)")
        pytest.skip("needs REDIS_URL")
    limit, each = 4, 10
    scope = f"test-gateway-{os.getpid()}-{id(object())}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.billing.redis_cache_settings", "REDIS_URL": redis_url}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, scope, str(limit), str(each)],
            cwd=Path(settings.BASE_DIR), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    per_second = Counter(w for windows in results for w in windows)
    assert sum(per_second.values()) == 2 * each
    assert max(per_second.values()) <= limit, per_second
    assert len(per_second) >= 2 * each // limit  # 20 requests at 4 a second spread over at least five seconds


def test_every_stripe_request_waits_for_a_slot(stripe_settings, localstripe, monkeypatch, settings):
    from billing.payments import stripe_gateway
    from billing.payments.gateway import get_gateway

    settings.GATEWAY_RATE_LIMIT_PER_SECOND = 7
    taken = []
    monkeypatch.setattr(stripe_gateway, "rate_limit_slot_take", lambda scope, n: taken.append((scope, n)))
    gateway = get_gateway()
    customer = gateway.create_customer(email="payer@example.com", idempotency_key="k-0")
    gateway.create_payment_intent(amount=500, currency="usd", idempotency_key="k-1", customer=customer.id)
    assert taken == [("gateway", 7), ("gateway", 7)]
