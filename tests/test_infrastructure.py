"""The real servers the suite depends on. In CI these fail when a server is unreachable; they never skip there."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_on_postgresql(db):
    if not IN_CI and connection.vendor != "postgresql":
        pytest.skip("local SQLite run; CI runs this suite on PostgreSQL")
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("select 1")
        assert cursor.fetchone() == (1,)


def test_celery_broker_is_redis_and_reachable():
    if not IN_CI and not settings.REDIS_URL:
        pytest.skip("no REDIS_URL: the local run uses the folder broker; CI sets REDIS_URL")
    from config.celery_app import app

    assert app.conf.broker_url.startswith("redis://")
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)
        assert conn.connected


def test_embedded_broker_needs_no_server(tmp_path):
    """With no REDIS_URL the Celery app talks to a folder: a message sent is a file, then received back."""
    code = """
import django, os
os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings.local'
django.setup()
from config.celery_app import app
assert app.conf.broker_url == 'filesystem://', app.conf.broker_url
with app.connection_for_write() as conn:
    queue = conn.SimpleQueue('billpay-selftest')
    queue.put({'hello': 'world'})
    message = queue.get(timeout=5)
    message.ack()
    print(message.payload['hello'])
"""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    for folder in ("queue", "processed", "control"):
        (ROOT / "var" / "broker" / folder).mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "world"
    assert not (ROOT / "control").exists(), "the folder broker must keep all its files under var/broker"


# Production settings (required variables, check --deploy): tests/config/test_production_settings.py
