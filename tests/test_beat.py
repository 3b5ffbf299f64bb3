"""Every beat entry names a task Celery knows, so a typo cannot silently stop a sweeper."""

from django.conf import settings

from config.celery_app import app


def test_every_beat_entry_is_a_registered_task():
    app.loader.import_default_modules()
    names = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert names >= {
        "billing.tasks.payments_reconcile_task",
        "billing.tasks.credits_apply_task",
        "billing.tasks.autopay_plan_task",
        "billing.tasks.autopay_sweep_task",
        "billing.tasks.plans_sweep_task",
        "notifications.tasks.reminders_plan_task",
        "notifications.tasks.notifications_sweep_task",
    }
    assert names <= set(app.tasks), names - set(app.tasks)
