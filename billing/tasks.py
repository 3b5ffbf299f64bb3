"""Celery tasks. Each is thin: it takes ids, re-fetches the rows and calls one service."""

from celery import shared_task

# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
from .payments.tasks import payments_reconcile_task  # noqa: E402, F401 - appended section of a shared file


# TEMPORARY (issue 9 stage 1): old import paths for code not yet moved; removed at integration.
from .autopay.tasks import autopay_charge_task, autopay_plan_task, autopay_sweep_task  # noqa: E402, F401
