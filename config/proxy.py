"""The client's address when a trusted proxy (the load balancer) stands in front of the web processes.

Rate limits and consent records read REMOTE_ADDR. Behind nginx, REMOTE_ADDR is nginx's own address, so every payer
would share one rate limit. X-Forwarded-For fixes that, but any client can send one, so it is read only when the
request comes straight from an address in settings.TRUSTED_PROXIES; then the last address in it that is not one of
our proxies is the client (earlier entries were written by the client and prove nothing).
"""

import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(proxy.strip(), strict=False) for proxy in proxies if proxy.strip())


def _trusted(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def address_in(address: str, entries: tuple[str, ...]) -> bool:
    """Whether an IP address lies in one of the given addresses or networks ("10.0.0.0/8", "127.0.0.1")."""
    return _trusted(address, _networks(entries))


def client_address(remote_addr: str, forwarded_for: str, proxies: tuple[str, ...]) -> str:
    """REMOTE_ADDR, or the nearest untrusted hop of X-Forwarded-For when REMOTE_ADDR is a trusted proxy."""
    networks = _networks(proxies)
    if not networks or not _trusted(remote_addr, networks):
        return remote_addr
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        if not _trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return remote_addr  # garbage in the header: keep the proxy's address rather than trust it
    return remote_addr


class TrustedProxyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        proxies = tuple(settings.TRUSTED_PROXIES)
        if proxies:
            request.META["REMOTE_ADDR"] = client_address(
                request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR", ""), proxies
            )
        return self.get_response(request)
