import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("billpay")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["billing.bills"])  # billing/bills/tasks.py: tasks named "billing.tasks.*"
app.autodiscover_tasks(["billing.payments"])  # billing/payments/tasks.py (its tasks keep their billing.tasks.* names)
