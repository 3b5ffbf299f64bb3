"""Send notification-outbox rows in-process during a test: Celery runs tasks eagerly (`.delay` executes at once), so
the payment_received / refund_issued notices billing raises after commit go out as they would through a worker.

Import the fixture into a test module: `from tests.notice_sending import celery_eager  # noqa: F401`."""

import pytest

RECEIPT_SUBJECT = "Payment received"  # notifications/payment_received/subject.txt, in English
REFUND_SUBJECT = "Refund issued"  # notifications/refund_issued/subject.txt


@pytest.fixture
def celery_eager():
    from config.celery_app import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield app
    finally:
        app.conf.task_always_eager = before


def receipt_emails(outbox) -> list:
    return [m for m in outbox if m.subject.startswith(RECEIPT_SUBJECT)]


def refund_emails(outbox) -> list:
    return [m for m in outbox if m.subject.startswith(REFUND_SUBJECT)]
