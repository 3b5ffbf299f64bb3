"""Time where the biller is. A bill due "today" in Honolulu is not overdue yet while it is already tomorrow in UTC, so
every "today" about a biller's bills, reminders or charges is taken in the biller's zone. The server's
`timezone.localdate()` stays for dates that are not about one biller (file stamps, card expiry)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone

UTC = ZoneInfo("UTC")


def zone_of(name: str | None, *, fallback: dt.tzinfo = UTC) -> dt.tzinfo:
    """The zone called `name`; `fallback` (UTC unless told) when the name is empty or unknown, because a bad zone name in
    one biller's row must not stop payments or reminders."""
    if not name:
        return fallback
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return fallback


def biller_zone(biller, *, fallback: dt.tzinfo = UTC) -> dt.tzinfo:
    return zone_of(biller.time_zone, fallback=fallback)


def zone_today(zone: dt.tzinfo, *, now: dt.datetime | None = None) -> dt.date:
    """The date in `zone` at `now` (the current moment unless told)."""
    return (now or timezone.now()).astimezone(zone).date()


def biller_today(biller, *, now: dt.datetime | None = None, fallback: dt.tzinfo = UTC) -> dt.date:
    """Today's date where the biller is, at `now` (the current moment unless told)."""
    return zone_today(biller_zone(biller, fallback=fallback), now=now)


def biller_localtime(biller, value: dt.datetime) -> dt.datetime:
    """An aware moment shown on the biller's wall clock."""
    return timezone.localtime(value, biller_zone(biller))
