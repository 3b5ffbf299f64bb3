"""/metrics: request counters from the middleware and the business backlog read from the database."""

import datetime as dt

from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from billing.models import Payment, WebhookEvent
from notifications.models import Notification


def samples(response) -> dict[tuple, float]:
    text = response.content.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def payment(account, status, number):
    return Payment.objects.create(
        biller=account.biller, account=account, confirmation_number=number, channel=Payment.Channel.GUEST_WEB,
        method=Payment.Method.CARD, status=status, currency="USD", amount=1000,
    )  # fmt: skip


def test_metrics_show_payments_by_outcome_and_the_backlogs(client, account):
    now = timezone.now()
    paid = payment(account, Payment.Status.SUCCEEDED, "P-1")
    payment(account, Payment.Status.SUCCEEDED, "P-2")
    payment(account, Payment.Status.FAILED, "P-3")
    for n, (status, when) in enumerate(
        [
            (Notification.Status.PENDING, now - dt.timedelta(minutes=5)),  # due, waiting: backlog
            (Notification.Status.PENDING, now + dt.timedelta(hours=5)),  # not due yet: not backlog
            (Notification.Status.SENDING, now),  # claimed, not sent: backlog
            (Notification.Status.SENT, now - dt.timedelta(hours=1)),
        ]
    ):
        Notification.objects.create(
            dedupe_key=f"k{n}", biller=account.biller, account=account, kind="bill_issued", channel="email",
            status=status, send_at=when, next_attempt_at=when, payment=paid,
        )  # fmt: skip
    WebhookEvent.objects.create(event_id="evt_done", type="payment_intent.succeeded", payload={}, processed_at=now)
    late = WebhookEvent.objects.create(event_id="evt_late", type="payment_intent.succeeded", payload={})
    WebhookEvent.objects.filter(pk=late.pk).update(received_at=now - dt.timedelta(seconds=90))

    client.get("/healthz/live/")
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    seen = samples(response)
    assert seen[("billpay_payments", (("status", "succeeded"),))] == 2
    assert seen[("billpay_payments", (("status", "failed"),))] == 1
    assert seen[("billpay_payments", (("status", "pending"),))] == 0
    assert seen[("billpay_outbox_backlog", (("status", "pending"),))] == 1
    assert seen[("billpay_outbox_backlog", (("status", "sending"),))] == 1
    assert seen[("billpay_autopay_backlog", (("status", "scheduled"),))] == 0
    assert seen[("billpay_webhooks_unprocessed", ())] == 1
    assert 90 <= seen[("billpay_webhook_lag_seconds", ())] < 600
    requests = [
        value
        for (name, labels), value in seen.items()
        if name == "django_http_responses_total_by_status_view_method_total" and ("view", "healthz_live") in labels
    ]
    assert sum(requests) >= 1


def test_metrics_are_not_for_the_public(client, db):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.5").status_code == 403
