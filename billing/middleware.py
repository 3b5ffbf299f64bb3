"""Staff see times on the biller's clock: the admin renders every date and time in the current time zone, which is the
server's (UTC) unless told. The zone's name is cached briefly so admin pages keep their query counts."""

from django.core.cache import cache
from django.utils import timezone

from billing.bills.selectors import biller_for_site
from billing.clock import zone_of

ZONE_CACHE_KEY = "billpay:site-biller-zone"
ZONE_CACHE_SECONDS = 60


def site_zone_name() -> str:
    name = cache.get(ZONE_CACHE_KEY)
    if name is None:
        biller = biller_for_site()
        name = biller.time_zone if biller else ""
        cache.set(ZONE_CACHE_KEY, name, ZONE_CACHE_SECONDS)
    return name


class BillerTimeZoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith("/admin/"):
            return self.get_response(request)
        name = site_zone_name()
        with timezone.override(zone_of(name, fallback=timezone.get_default_timezone())):
            return self.get_response(request)
