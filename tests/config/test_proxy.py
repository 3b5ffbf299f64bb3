"""The client address behind the load balancer: taken from X-Forwarded-For only when a trusted proxy sent it."""

import pytest
from django.test import RequestFactory

from config.proxy import TrustedProxyMiddleware, client_address


def seen_address(settings, remote_addr: str, forwarded_for: str | None, proxies: list[str]) -> str:
    settings.TRUSTED_PROXIES = proxies
    headers = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for is not None else {}
    request = RequestFactory().get("/", REMOTE_ADDR=remote_addr, **headers)
    seen = {}
    TrustedProxyMiddleware(lambda r: seen.setdefault("ip", r.META["REMOTE_ADDR"]))(request)
    return seen["ip"]


def test_without_trusted_proxies_a_forged_header_changes_nothing(settings):
    assert seen_address(settings, "198.51.100.7", "1.2.3.4", []) == "198.51.100.7"


def test_a_request_from_the_trusted_proxy_gets_the_client_it_forwarded(settings):
    assert seen_address(settings, "127.0.0.1", "203.0.113.9", ["127.0.0.1"]) == "203.0.113.9"


def test_a_client_cannot_forge_its_way_past_the_proxy(settings):
    # The client sent "X-Forwarded-For: 1.2.3.4"; nginx appended the address it saw. Only nginx's entry counts.
    assert seen_address(settings, "10.0.0.5", "1.2.3.4, 203.0.113.9", ["10.0.0.0/8"]) == "203.0.113.9"


def test_a_request_straight_from_the_internet_is_not_believed(settings):
    assert seen_address(settings, "198.51.100.7", "1.2.3.4", ["10.0.0.0/8"]) == "198.51.100.7"


@pytest.mark.parametrize("header", [None, "", "not-an-ip", "10.0.0.6"])
def test_no_usable_client_in_the_header_keeps_the_proxy_address(settings, header):
    assert seen_address(settings, "10.0.0.5", header, ["10.0.0.0/8"]) == "10.0.0.5"


def test_ipv6_proxies_and_clients():
    assert client_address("::1", "2001:db8::7", ("::1",)) == "2001:db8::7"


def test_the_lookup_rate_limit_counts_each_client_behind_the_proxy_apart(client, settings, account):
    """Eleven wrong lookups from one payer behind nginx lock that payer out, not the next one."""
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "proxy"}}

    def lookup(ip, number):
        form = {"account_number": number, "postal_code": "00000"}
        return client.post("/pay/", form, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=ip)

    # Different account numbers each time, so only the per-address limit (10 per window) can bite.
    responses = [lookup("203.0.113.1", f"NO-SUCH-{n}") for n in range(11)]
    other = lookup("203.0.113.2", "NO-SUCH-other")
    assert [r.status_code for r in responses][-1] == 429
    assert other.status_code == 200
