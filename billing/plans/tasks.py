"""Plans' Celery task: thin, idempotent (every change is a checked status move under the plan's lock)."""

from celery import shared_task

from .running import plans_sweep


@shared_task(name="billing.tasks.plans_sweep_task", time_limit=10 * 60, soft_time_limit=9 * 60)
def plans_sweep_task() -> int:
    return plans_sweep().looked_at
