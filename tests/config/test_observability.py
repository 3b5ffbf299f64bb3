"""Request ids: one per request, echoed back, on every log line, and carried into the Celery tasks it enqueues."""

import json
import logging

from celery import shared_task

from config.observability import (
    JsonFormatter,
    RequestIdFilter,
    celery_publish_add_request_id,
    celery_task_end,
    celery_task_start,
    request_id_get,
    request_id_set,
)


def test_each_response_carries_a_request_id_and_a_sane_one_from_the_proxy_is_kept(client, db):
    first = client.get("/healthz/live/")
    second = client.get("/healthz/live/")
    assert len(first["X-Request-ID"]) == 32 and first["X-Request-ID"] != second["X-Request-ID"]
    assert client.get("/healthz/live/", HTTP_X_REQUEST_ID="nginx-0123456789abcdef")["X-Request-ID"] == (
        "nginx-0123456789abcdef"
    )
    forged = client.get("/healthz/live/", HTTP_X_REQUEST_ID="<script>alert(1)</script>")["X-Request-ID"]
    assert "<" not in forged and len(forged) == 32


def test_json_log_lines_carry_the_request_id():
    record = logging.LogRecord("billing.payments", logging.WARNING, __file__, 1, "payment %s failed", (7,), None)
    record.payment_id = 7
    token = request_id_set("req-0123456789")
    try:
        RequestIdFilter().filter(record)
        line = json.loads(JsonFormatter().format(record))
    finally:
        token.var.reset(token)
    assert line["message"] == "payment 7 failed"
    assert line["request_id"] == "req-0123456789"
    assert line["level"] == "WARNING" and line["logger"] == "billing.payments"
    assert line["payment_id"] == 7


@shared_task(name="tests.config.echo_request_id")
def echo_request_id():
    return request_id_get()


def test_a_task_runs_under_the_request_id_of_the_request_that_published_it():
    """The publish hook puts the id in the message headers; the worker's prerun hook reads it from task.request."""
    headers = {}
    token = request_id_set("req-abcdef0123")
    try:
        celery_publish_add_request_id(headers=headers)
    finally:
        token.var.reset(token)
    assert headers == {"request_id": "req-abcdef0123"}

    # What the worker does with that message: task.request holds the headers while the task runs.
    echo_request_id.push_request(id="t-1", **headers)
    try:
        celery_task_start(task_id="t-1", task=echo_request_id)
        assert echo_request_id.run() == "req-abcdef0123"
        celery_task_end(task_id="t-1")
    finally:
        echo_request_id.pop_request()
    assert request_id_get() == ""


def test_a_task_with_no_request_behind_it_gets_its_own_id():
    echo_request_id.push_request(id="t-2")
    try:
        celery_task_start(task_id="t-2", task=echo_request_id)
        own = echo_request_id.run()
        celery_task_end(task_id="t-2")
    finally:
        echo_request_id.pop_request()
    assert len(own) == 32
