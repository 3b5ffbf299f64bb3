"""Liveness answers without touching anything; readiness checks database, migrations, cache, broker and storage."""

import pytest

from config import health
from tests.conftest import IN_CI


def test_live_needs_nothing(client):
    response = client.get("/healthz/live/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_checks_every_part(client, db, settings, tmp_path):
    from django.conf import settings as live_settings

    if not live_settings.REDIS_URL:
        if IN_CI:
            pytest.fail("CI sets REDIS_URL: readiness must be proved against the real broker")
        pytest.skip("no REDIS_URL: the folder broker is checked in test_ready_reports_the_part_that_failed")
    settings.STORAGES = {
        **settings.STORAGES,
        "private": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    response = client.get("/healthz/ready/")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok", "cache": "ok", "broker": "ok", "storage": "ok"},
    }
    assert list(tmp_path.rglob("*.txt")) == []  # the probe file is gone again


def test_ready_reports_the_part_that_failed(client, db, settings, tmp_path, monkeypatch):
    monkeypatch.setattr(health, "_broker", lambda: None)
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")  # storage "root" is a file: nothing can be saved under it, even as root
    settings.STORAGES = {
        **settings.STORAGES,
        "private": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(not_a_folder)},
        },
    }
    response = client.get("/healthz/ready/")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "failed"
    assert body["checks"]["storage"].startswith("failed: ")
    assert body["checks"]["database"] == "ok" and body["checks"]["cache"] == "ok"


def test_ready_fails_while_a_migration_is_missing(client, db, monkeypatch):
    monkeypatch.setattr(health, "_broker", lambda: None)
    monkeypatch.setattr(health, "_migrations_seen_applied", False)

    class Unmigrated:
        def __init__(self, connection):
            self.loader = type("Loader", (), {"graph": type("Graph", (), {"leaf_nodes": lambda self: []})()})()

        def migration_plan(self, targets):
            return [("billing", "9999_future")]

    monkeypatch.setattr(health, "MigrationExecutor", Unmigrated)
    response = client.get("/healthz/ready/")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "failed: RuntimeError"
