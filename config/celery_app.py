import os

from celery import Celery

from config.observability import celery_connect

# Production by default, as the web entry point (config/wsgi.py); the run command and the tests set theirs.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("billpay")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# billing has no tasks module of its own: its tasks live in its sub-packages (their task names stay billing.tasks.*).
app.autodiscover_tasks(["billing.bills", "billing.payments", "billing.autopay", "billing.banking", "billing.plans"])
celery_connect(app)
