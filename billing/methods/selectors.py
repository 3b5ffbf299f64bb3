"""Saved payment methods: reads."""

from __future__ import annotations

from django.db.models import QuerySet

from ..models import PaymentMethod


def user_payment_methods(*, user) -> QuerySet[PaymentMethod]:
    return PaymentMethod.objects.filter(user=user, removed_at__isnull=True).select_related("mandate").order_by(
        "-is_default", "-is_backup", "-created_at", "-pk"
    )
