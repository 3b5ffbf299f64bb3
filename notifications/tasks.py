"""Celery tasks for notifications. Thin: ids in, one service call.

Beat runs two short ones (planner hourly, sweeper every minute); the sweeper enqueues one send task per due row.
"""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from .planner import plan_reminders_plan, reminders_plan
from .services import notification_send, notifications_sweep


@shared_task(time_limit=10 * 60, soft_time_limit=9 * 60)
def reminders_plan_task() -> int:
    # Idempotent: the unique dedupe key makes a second run (or two at once) add nothing.
    return reminders_plan().rows + plan_reminders_plan()


@shared_task(time_limit=2 * 60, soft_time_limit=100)
def notifications_sweep_task() -> int:
    # Safe concurrently: rows are claimed with skip_locked, so two sweeps take disjoint rows.
    return len(notifications_sweep().claimed)


@shared_task(
    acks_late=True,  # idempotent: the row is the unit of work, and a second delivery of this message is a no-op
    autoretry_for=(OperationalError, InterfaceError),  # our database blinked; provider errors are retried in the row
    retry_backoff=True,
    retry_backoff_max=120,
    max_retries=5,
    time_limit=120,  # well under NOTIFICATIONS_SENDING_TIMEOUT_SECONDS, so a live worker is never reclaimed from
    soft_time_limit=100,
)
def notification_send_task(notification_id: int) -> str:
    return notification_send(notification_id=notification_id)


@shared_task(
    acks_late=True,  # idempotent: each row starts with a conditional UPDATE, so a redelivery sends nothing twice
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=120,
    max_retries=5,
    time_limit=15 * 60,
    soft_time_limit=14 * 60,
)
def notifications_send_batch_task(notification_ids: list[int]) -> int:
    # The receipts of a statement chunk: one message for the batch, not one per row. A row this task never reaches
    # (the worker died) stays claimed and unstarted, and the sweeper enqueues it again.
    return sum(1 for pk in notification_ids if notification_send(notification_id=pk) == "sent")
