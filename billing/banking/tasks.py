"""Celery tasks for bank statements. Thin: ids in, one service."""

from celery import shared_task

from ..models import BankStatement
from .statements import statement_match


@shared_task(name="billing.tasks.statement_match_task", acks_late=True)
def statement_match_task(statement_id: int) -> None:
    # acks_late is safe: matching picks only lines still new, under their row locks, and the payment core's unique
    # key on the bank entry refuses a second payment; a redelivery resumes where the first run stopped.
    statement = BankStatement.objects.filter(pk=statement_id).first()
    if statement is not None and statement.status != BankStatement.Status.FAILED:
        statement_match(statement=statement)
