"""Autopay's Celery tasks. Each is thin: it takes ids, re-fetches the rows and calls one service. The task names stay
`billing.tasks.*` (where they were first defined): the beat schedule and messages already queued name them."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from .charging import autopay_charge, autopay_charge_batch
from .planning import autopay_plan, autopay_sweep


@shared_task(name="billing.tasks.autopay_plan_task", time_limit=10 * 60, soft_time_limit=9 * 60)
def autopay_plan_task() -> int:
    # Idempotent: the unique (bill, enrolment) key and the outbox's unique keys make a second run add nothing.
    return autopay_plan().created


@shared_task(name="billing.tasks.autopay_sweep_task", time_limit=2 * 60, soft_time_limit=100)
def autopay_sweep_task() -> int:
    # Safe concurrently: rows are claimed with skip_locked, so two sweeps take disjoint rows.
    return len(autopay_sweep().claimed)


@shared_task(
    name="billing.tasks.autopay_charge_task",
    # acks_late only because a redelivery cannot charge twice: the run starts with a conditional UPDATE on the row
    # (one run per claim), and each charge is a Payment + try with a unique key derived from the row and attempt; a
    # resumed try asks the gateway about its stored intent instead of creating one.
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),  # our database blinked; declines are handled in the row
    retry_backoff=True,
    retry_backoff_max=120,
    max_retries=5,
    time_limit=120,  # well under AUTOPAY_CHARGING_TIMEOUT_SECONDS, so a live worker is never reclaimed from
    soft_time_limit=100,
)
def autopay_charge_task(charge_id: int) -> str:
    return autopay_charge(charge_id=charge_id)


@shared_task(
    name="billing.tasks.autopay_charge_batch_task",
    # As autopay_charge_task: a redelivered batch finds its rows started (noop) or resumes their tries.
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=120,
    max_retries=5,
    time_limit=300,  # a batch of AUTOPAY_CHARGE_BATCH_SIZE rows, well under AUTOPAY_CHARGING_TIMEOUT_SECONDS
    soft_time_limit=280,
)
def autopay_charge_batch_task(charge_ids: list[int]) -> dict[int, str]:
    return autopay_charge_batch(charge_ids=charge_ids)
