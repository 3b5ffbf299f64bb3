"""Selectors read. A fixed number of queries however many rows there are."""

import datetime as dt

from django.db.models import Count, QuerySet

from .models import Notification


def notifications_due(*, now: dt.datetime) -> QuerySet[Notification]:
    return Notification.objects.filter(status=Notification.Status.PENDING, next_attempt_at__lte=now).order_by(
        "next_attempt_at", "pk"
    )


def notification_counts() -> list[dict]:
    """Rows per status and channel, for the command and the admin's numbers."""
    return list(
        Notification.objects.values("status", "channel").annotate(rows=Count("pk")).order_by("status", "channel")
    )
