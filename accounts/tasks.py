"""Celery tasks for portal accounts. Each is thin: it takes ids and calls one service."""

import smtplib

from celery import shared_task

from .invitations import invitation_batch_run


@shared_task(
    acks_late=True,  # idempotent: the batch's cursor and the (batch, account) constraint stop a second e-mail
    autoretry_for=(smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ConnectionError, TimeoutError),
    retry_backoff=True,
    max_retries=8,
    time_limit=10 * 60,
    soft_time_limit=9 * 60,
)
def invitation_batch_send_task(batch_id: int) -> None:
    # A run handles a bounded number of accounts, then hands the rest to a fresh delivery of itself, so a big file
    # never runs into the time limit. A transport failure rolls back the account in hand and retries from there.
    if not invitation_batch_run(batch_id=batch_id):
        invitation_batch_send_task.delay(batch_id)
