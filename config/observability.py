"""One request id per web request, carried into the Celery tasks it enqueues, on every log line; JSON log lines.

The id comes from the proxy's X-Request-ID header (nginx `$request_id`) when it is a sane token, else a new one, and
goes back in the response's X-Request-ID. A task published while a request (or another task) runs carries the id in
a message header; the worker sets it again while the task runs. Log lines read it through RequestIdFilter.
"""

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

REQUEST_ID_HEADER = "X-Request-ID"
_request_id: ContextVar[str] = ContextVar("billpay_request_id", default="")
_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")


def request_id_get() -> str:
    return _request_id.get()


def request_id_set(value: str):
    """Set the current id; returns the token to reset it with."""
    return _request_id.set(value)


def request_id_new() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        offered = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = offered if _SANE_ID.match(offered) else request_id_new()
        request.request_id = request_id
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = getattr(record, "request_id", None) or _request_id.get() or "-"
        return True


_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        if not request_id or request_id == "-":  # "-" is RequestIdFilter's "none" for plain text lines
            request_id = _request_id.get() or None
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


# Celery: the id rides in a message header (protocol 2 hands unknown headers to task.request).


def celery_publish_add_request_id(sender=None, headers=None, **kwargs):
    request_id = _request_id.get()
    if headers is not None and request_id and "request_id" not in headers:
        headers["request_id"] = request_id


_task_tokens: dict[str, object] = {}


def celery_task_start(task_id=None, task=None, **kwargs):
    carried = getattr(task.request, "request_id", None) if task is not None else None
    _task_tokens[task_id] = _request_id.set(carried if carried and _SANE_ID.match(carried) else request_id_new())


def celery_task_end(task_id=None, **kwargs):
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        _request_id.reset(token)


def celery_connect(app) -> None:
    from celery.signals import before_task_publish, task_postrun, task_prerun

    before_task_publish.connect(celery_publish_add_request_id, weak=False)
    task_prerun.connect(celery_task_start, weak=False)
    task_postrun.connect(celery_task_end, weak=False)
