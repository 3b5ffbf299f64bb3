"""Celery tasks of the payments package. Thin: each calls one service. Names stay `billing.tasks.*` (beat schedule,
messages in flight)."""

from celery import shared_task

from .credit import credits_apply
from .reconcile import payments_reconcile
from .refunds import refunds_reconcile


@shared_task(name="billing.tasks.payments_reconcile_task", time_limit=10 * 60, soft_time_limit=9 * 60)
def payments_reconcile_task() -> None:
    # Safe to run twice at once: the service skips accounts another run holds (skip_locked), and every change it makes
    # is idempotent. A transport error on one payment is logged and retried on the next beat. Refunds whose answer was
    # lost are settled here too: listed at the gateway first, sent again (same row, same key) only if not there.
    payments_reconcile()
    refunds_reconcile()


@shared_task(name="billing.tasks.credits_apply_task", time_limit=10 * 60, soft_time_limit=9 * 60)
def credits_apply_task() -> None:
    # Idempotent: each account is applied under its row lock and only what its bills still owe.
    credits_apply()
