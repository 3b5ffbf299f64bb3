"""Prometheus metrics at /metrics: requests (django-prometheus's middleware, per view, status and latency) plus
what the business needs watched, read from the database at scrape time so that every process reports the same:

- billpay_payments{status}: payments by outcome (Payment.status);
- billpay_payment_attempts{kind,outcome}: gateway calls by outcome;
- billpay_outbox_backlog{status}: notices due and not yet sent (pending past their time, or sending);
- billpay_autopay_backlog{status}: autopay charges due and not yet charged;
- billpay_webhooks_unprocessed and billpay_webhook_lag_seconds: stored webhook events not yet processed, and the age
  of the oldest one.

Under gunicorn with several workers, PROMETHEUS_MULTIPROC_DIR (set by config/gunicorn.conf.py) makes the request
metrics add up across workers. Only addresses in METRICS_ALLOWED_IPS may read them.
"""

import os

from django.conf import settings
from django.db.models import Count, Min, Q
from django.http import HttpResponse, HttpResponseForbidden
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from billing.models import AutopayCharge, Payment, PaymentAttempt, WebhookEvent
from config.proxy import address_in
from notifications.models import Notification


class BillpayCollector:
    def collect(self):
        now = timezone.now()
        payments = GaugeMetricFamily("billpay_payments", "Payments by status (outcome)", labels=["status"])
        counts = dict(Payment.objects.values_list("status").annotate(n=Count("pk")).order_by())
        for status in Payment.Status.values:
            payments.add_metric([status], counts.get(status, 0))
        yield payments

        attempts = GaugeMetricFamily(
            "billpay_payment_attempts", "Gateway calls by kind and outcome", labels=["kind", "outcome"]
        )
        for kind, outcome, n in (
            PaymentAttempt.objects.values_list("kind", "outcome").annotate(n=Count("pk")).order_by()
        ):
            attempts.add_metric([kind, outcome], n)
        yield attempts

        outbox = GaugeMetricFamily("billpay_outbox_backlog", "Notices due and not sent yet", labels=["status"])
        due = Notification.objects.filter(
            Q(status=Notification.Status.SENDING) | Q(status=Notification.Status.PENDING, next_attempt_at__lte=now)
        )
        counts = dict(due.values_list("status").annotate(n=Count("pk")).order_by())
        for status in (Notification.Status.PENDING, Notification.Status.SENDING):
            outbox.add_metric([status], counts.get(status, 0))
        yield outbox

        autopay = GaugeMetricFamily(
            "billpay_autopay_backlog", "Autopay charges due and not charged yet", labels=["status"]
        )
        waiting = (AutopayCharge.Status.SCHEDULED, AutopayCharge.Status.RETRY_SCHEDULED)
        due = AutopayCharge.objects.filter(
            Q(status=AutopayCharge.Status.CHARGING) | Q(status__in=waiting, next_attempt_at__lte=now)
        )
        counts = dict(due.values_list("status").annotate(n=Count("pk")).order_by())
        for status in (*waiting, AutopayCharge.Status.CHARGING):
            autopay.add_metric([status], counts.get(status, 0))
        yield autopay

        unprocessed = WebhookEvent.objects.filter(processed_at__isnull=True).aggregate(
            n=Count("pk"), oldest=Min("received_at")
        )
        yield GaugeMetricFamily(
            "billpay_webhooks_unprocessed", "Webhook events stored and not processed", value=unprocessed["n"]
        )
        lag = (now - unprocessed["oldest"]).total_seconds() if unprocessed["oldest"] else 0
        yield GaugeMetricFamily(
            "billpay_webhook_lag_seconds", "Age of the oldest webhook event not processed yet", value=lag
        )


def metrics_text() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        process_registry = CollectorRegistry()
        MultiProcessCollector(process_registry)
    else:
        process_registry = REGISTRY
    business = CollectorRegistry(auto_describe=False)
    business.register(BillpayCollector())
    return generate_latest(process_registry) + generate_latest(business)


def metrics(request):
    if not address_in(request.META.get("REMOTE_ADDR", ""), tuple(settings.METRICS_ALLOWED_IPS)):
        return HttpResponseForbidden("metrics are for the monitoring network only\n")
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
