"""Celery tasks for bills. Each is thin: it takes ids, re-fetches the rows and calls one service.

Task names keep their old "billing.tasks." prefix: the beat schedule and messages already queued use them."""

from celery import shared_task

from ..models import ImportBatch
from .imports import bill_import_run


@shared_task(name="billing.tasks.bill_import_run_task")
def bill_import_run_task(batch_id: int) -> None:
    # Not acks_late: the service only runs a batch that is still waiting, so a redelivery after a crash would do
    # nothing anyway, and the natural key (biller, bill number) already stops a second import of the same bills.
    batch = ImportBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        return
    bill_import_run(batch=batch)
