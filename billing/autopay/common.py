"""What the autopay modules share until stage 2 of issue 9 replaces it: an AUTOPAY_* setting read with its default
(stage 2 reads them from config/settings only) and today in the biller's time zone (stage 2: one billing-wide
helper)."""

from __future__ import annotations

from django.conf import settings


def autopay_setting(name: str, default):
    return getattr(settings, name, default)
