"""Celery tasks. Each is thin: it takes ids, re-fetches the rows and calls one service."""

from celery import shared_task

from .imports import bill_import_run
from .models import ImportBatch


@shared_task
def bill_import_run_task(batch_id: int) -> None:
    # Not acks_late: the service only runs a batch that is still waiting, so a redelivery after a crash would do
    # nothing anyway, and the natural key (biller, bill number) already stops a second import of the same bills.
    batch = ImportBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        return
    bill_import_run(batch=batch)


from .payments import payments_reconcile  # noqa: E402 - appended section of a shared file


@shared_task(time_limit=10 * 60, soft_time_limit=9 * 60)
def payments_reconcile_task() -> None:
    # Safe to run twice at once: the service skips accounts another run holds (skip_locked), and every change it makes
    # is idempotent. A transport error on one payment is logged and retried on the next beat.
    payments_reconcile()
