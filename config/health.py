"""Liveness and readiness for the load balancer and the orchestrator.

- /healthz/live/: the process answers. It touches nothing else, so a database outage never gets web processes
  restarted in a loop.
- /healthz/ready/: this process can serve: the database answers and every migration is applied, the shared cache
  and the Celery broker answer, and the private file storage can write, read and delete. 503 with the failing part
  otherwise, so the load balancer sends traffic elsewhere.
"""

import logging
import uuid

from django.core.cache import cache
from django.core.files.base import ContentFile
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from billing.storage import private_storage

logger = logging.getLogger(__name__)
_migrations_seen_applied = False


def _database() -> None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _migrations() -> None:
    global _migrations_seen_applied
    if _migrations_seen_applied:  # they cannot become unapplied under a running process
        return
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        raise RuntimeError(f"{len(plan)} migration(s) not applied")
    _migrations_seen_applied = True


def _cache() -> None:
    key = f"billpay:healthz:{uuid.uuid4().hex}"
    cache.set(key, "ok", timeout=30)
    if cache.get(key) != "ok":
        raise RuntimeError("the cache did not return what was stored")
    cache.delete(key)


def _broker() -> None:
    from config.celery_app import app

    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=3)


def _storage() -> None:
    storage = private_storage()
    name = storage.save(f"healthz/{uuid.uuid4().hex}.txt", ContentFile(b"ok"))
    try:
        with storage.open(name, "rb") as handle:
            if handle.read() != b"ok":
                raise RuntimeError("the storage did not return what was stored")
    finally:
        storage.delete(name)


READINESS_CHECKS = {
    "database": _database,
    "migrations": _migrations,
    "cache": _cache,
    "broker": _broker,
    "storage": _storage,
}


@never_cache
def live(request):
    return JsonResponse({"status": "ok"})


@never_cache
def ready(request):
    results = {}
    for name, check in READINESS_CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the log has the detail
            logger.warning("readiness check %s failed: %s", name, exc, exc_info=True)
            results[name] = f"failed: {type(exc).__name__}"
    healthy = all(result == "ok" for result in results.values())
    return JsonResponse({"status": "ok" if healthy else "failed", "checks": results}, status=200 if healthy else 503)
