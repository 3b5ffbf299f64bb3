"""Time where the biller is. A bill due "today" in Honolulu is not overdue yet while it is already tomorrow in UTC, so
every "today" about a biller's bills, reminders or charges is taken in the biller's zone. The server's
`timezone.localdate()` stays for dates that are not about one biller (file stamps, card expiry)."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
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


# --- Dates and times as pages, PDFs and e-mails show them --------------------------------------------------------------
# One style everywhere: CLDR's "long" date (babel) in the active language, so a receipt and a bill never differ, and
# times on the biller's wall clock with the zone's city named ("4:36 PM Chicago"), because a payer may be elsewhere.
# A biller may show Persian pages in the Solar Hijri calendar with Persian digits (Biller.calendar).

DATE_STYLE = "long"
_PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")


def _locale_of(language: str | None) -> str:
    from django.utils.translation import get_language, to_locale

    return to_locale(language or get_language() or "en")


def _solar_hijri(value: dt.date) -> str:
    import jdatetime

    day = jdatetime.date.fromgregorian(date=value)
    month = jdatetime.date.j_months_fa[day.month - 1]
    return f"{day.day} {month} {day.year}".translate(_PERSIAN_DIGITS)


def _uses_solar_hijri(biller, language: str | None) -> bool:
    from django.utils.translation import get_language

    return (
        biller is not None
        and getattr(biller, "calendar", "") == "solar_hijri"
        and (language or get_language() or "").split("-")[0] == "fa"
    )


def date_display(value: dt.date | None, *, biller=None, language: str | None = None) -> str:
    """A date in the page's one style: "November 27, 2026", "27 نوفمبر 2026", or "۶ آذر ۱۴۰۵" for a Solar Hijri biller."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):  # a moment: its date where the biller is
        value = (biller_localtime(biller, value) if biller is not None else timezone.localtime(value)).date()
    if _uses_solar_hijri(biller, language):
        return _solar_hijri(value)
    return _date_formatted(value, _locale_of(language))


@lru_cache(maxsize=4096)
def _date_formatted(value: dt.date, locale: str) -> str:
    """babel's long date, kept per process: a page shows the same few dates many times (a bill list, a dashboard), and
    a date's text in a language never changes."""
    from babel.dates import format_date

    return format_date(value, DATE_STYLE, locale=locale)


def zone_display(biller, *, language: str | None = None) -> str:
    """The biller's zone as payers know it: its city ("Chicago"), or the zone's name when it has no city (UTC)."""
    from babel.dates import get_timezone_location

    zone = biller_zone(biller)
    if str(zone) in {"UTC", "Etc/UTC"}:
        return "UTC"
    try:
        return get_timezone_location(zone, locale=_locale_of(language), return_city=True)
    except Exception:  # an odd zone name must never break a page
        return str(zone)


def datetime_display(value: dt.datetime | None, *, biller, language: str | None = None) -> str:
    """An aware moment on the biller's clock, the zone named: "November 27, 2026, 10:36 AM Chicago"."""
    from babel.dates import format_time, get_datetime_format

    if value is None:
        return ""
    local = biller_localtime(biller, value)
    locale = _locale_of(language)
    time = format_time(local, "short", locale=locale)
    if _uses_solar_hijri(biller, language):
        time = time.translate(_PERSIAN_DIGITS)
    pattern = str(get_datetime_format("medium", locale=locale))
    return pattern.replace("{1}", date_display(local.date(), biller=biller, language=language)).replace(
        "{0}", f"{time} {zone_display(biller, language=language)}"
    )
