"""Fixed-window rate limits in Django's cache, which every process shares (settings.CACHES). Used by the guest account
lookup and by the "send me a new invitation link" page (count and refuse), and by the payment gateway (wait for a
slot: `rate_limit_slot_take`)."""

import hashlib
import math
import time

from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache


def rate_limit_key(scope: str, kind: str, ident: str) -> str:
    """`billpay:<scope>:<kind>:<hash>`. Hashed so that raw IPs and account numbers never sit in the cache (and keys stay
    short and safe for memcached)."""
    return f"billpay:{scope}:{kind}:{hashlib.sha256(ident.encode()).hexdigest()[:32]}"


def rate_limit_hit(key: str, window: int) -> tuple[int, int]:
    """Count one event in a fixed window that starts with the first event. Returns (count, seconds left)."""
    now = time.time()
    cache.add(f"{key}:start", now, timeout=window)
    start = cache.get(f"{key}:start", now)
    remaining = max(1, math.ceil(start + window - now))
    cache.add(key, 0, timeout=remaining)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=remaining)
        count = 1
    cache.touch(key, remaining)  # some backends' incr resets the timeout to the default
    return count, remaining


def rate_limit_undo(key: str) -> None:
    """Take back one counted event (a lookup that succeeded does not count as a failure)."""
    try:
        cache.decr(key)
    except ValueError:
        pass


def rate_limit_slot_take(scope: str, per_second: int, *, clock=time.time, sleep=time.sleep) -> int:
    """Wait until a slot is free in this calendar second's window and take it: at most `per_second` slots per second
    in every process together, since the count is the shared cache's atomic increment (Redis INCR in production).
    Returns the window (a Unix second). Windows are the machines' clocks' seconds, so they must be NTP-synchronised
    (as Stripe's own limiter is per second, a one-second fixed window is the unit it counts in)."""
    while True:
        now = clock()
        window = int(now)
        key = f"billpay:{scope}:slots:{window}"
        taken = _slot_count(key)
        if taken is None:  # evicted between add and incr: count again
            continue
        if taken <= per_second:
            return window
        sleep(max(window + 1 - now, 0.001))  # full: wait for the next second


def _slot_count(key: str) -> int | None:
    """Count one slot in the window's counter and return the count (None: try again). On Redis one round trip (INCR;
    the first count of a window also sets its expiry); Django's cache API needs three (SET NX, EXISTS, INCR), for
    every gateway request."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(backend, RedisCache):
        redis_key = backend.make_and_validate_key(key)
        client = backend._cache.get_client(write=True)  # one client per pool (config.cache), not one per call
        count = client.incr(redis_key)
        if count == 1:
            # A worker that dies between the two leaves a key without expiry: one second's counter, never used again.
            client.expire(redis_key, 10)
        return count
    cache.add(key, 0, timeout=10)
    try:
        return cache.incr(key)
    except ValueError:
        return None

