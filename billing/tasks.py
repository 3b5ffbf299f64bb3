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


from .payments import payments_reconcile, refunds_reconcile  # noqa: E402 - appended section of a shared file


@shared_task(time_limit=10 * 60, soft_time_limit=9 * 60)
def payments_reconcile_task() -> None:
    # Safe to run twice at once: the service skips accounts another run holds (skip_locked), and every change it makes
    # is idempotent. A transport error on one payment is logged and retried on the next beat. Refunds whose answer was
    # lost are settled here too: listed at the gateway first, sent again (same row, same key) only if not there.
    payments_reconcile()
    refunds_reconcile()


# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
from .autopay.tasks import autopay_charge_task, autopay_plan_task, autopay_sweep_task  # noqa: E402, F401
