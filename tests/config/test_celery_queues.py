"""Tasks go to the queue of their kind, so a flood of one kind never delays another (docs/deploy.md)."""

import pytest

from config.celery_app import app


@pytest.fixture(autouse=True, scope="module")
def tasks_loaded():
    app.loader.import_default_modules()  # what a worker does at start: autodiscover every tasks module


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("billing.tasks.autopay_charge_task", "payments"),
        ("billing.tasks.autopay_charge_batch_task", "payments"),
        ("billing.tasks.payments_reconcile_task", "payments"),
        ("notifications.tasks.notification_send_task", "notifications"),
        ("notifications.tasks.notifications_send_batch_task", "notifications"),
        ("billing.tasks.bill_import_run_task", "bulk"),
        ("billing.tasks.statement_match_task", "bulk"),
        ("billing.tasks.credits_apply_task", "payments"),
        ("accounts.tasks.invitation_batch_send_task", "bulk"),
        ("billing.tasks.autopay_plan_task", "bulk"),
        ("billing.tasks.plans_sweep_task", "bulk"),
        ("notifications.tasks.reminders_plan_task", "bulk"),
        ("billing.tasks.autopay_sweep_task", "default"),
        ("notifications.tasks.notifications_sweep_task", "default"),
    ],
)
def test_each_task_is_routed_to_its_kind(task, queue):
    assert task in app.tasks, f"{task} is not a registered task"
    assert app.amqp.router.route({}, task)["queue"].name == queue


def test_every_registered_task_of_ours_lands_on_a_declared_queue():
    declared = {q.name for q in app.conf.task_queues}
    assert declared == {"payments", "notifications", "bulk", "default"}
    ours = [name for name in app.tasks if name.split(".")[0] in {"billing", "notifications", "accounts"}]
    assert ours
    for name in ours:
        assert app.amqp.router.route({}, name)["queue"].name in declared, name
