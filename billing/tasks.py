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
