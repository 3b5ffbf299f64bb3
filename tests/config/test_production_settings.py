"""Production settings, loaded in a fresh process as a deployment would: they refuse to start without the shared
servers, and with everything set `manage.py check --deploy` has nothing to say."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def production_env(**changes) -> dict:
    """Every variable production requires, plus `changes` (None removes one). Nothing leaks in from the test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "STRIPE_", "S3_", "SENTRY_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="pay.example.com",
        DATABASE_URL="postgres://billpay@db.invalid:5432/billpay",
        REDIS_URL="redis://redis.invalid:6379/0",
        S3_BUCKET="billpay-private",
        STRIPE_SECRET_KEY="sk_test_x",
        STRIPE_PUBLISHABLE_KEY="pk_test_x",
        STRIPE_WEBHOOK_SECRET="whsec_x",
    )
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("missing", ["DATABASE_URL", "REDIS_URL", "S3_BUCKET"])
def test_production_refuses_to_start_without_a_shared_server(missing):
    result = manage("check", env=production_env(**{missing: None}))
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr
    # Only the missing one is named.
    others = {"DATABASE_URL", "REDIS_URL", "S3_BUCKET"} - {missing}
    assert not any(f"{other} is not set" in result.stderr for other in others)


@pytest.mark.parametrize("secret", ["DJANGO_SECRET_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"])
def test_production_has_no_default_for_secrets(secret):
    result = manage("check", env=production_env(**{secret: None}))
    assert result.returncode != 0
    assert f"Set the {secret} environment variable" in result.stderr


def test_production_treats_an_empty_variable_as_missing():
    result = manage("check", env=production_env(REDIS_URL=""))
    assert result.returncode != 0
    assert "REDIS_URL is not set" in result.stderr


def test_check_deploy_prints_no_warning_with_everything_set():
    result = manage("check", "--deploy", "--fail-level", "DEBUG", env=production_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."
    assert "WARNING" not in result.stderr and "?:" not in result.stderr


def test_wsgi_and_celery_default_to_production_settings():
    code = (
        "import os; os.environ.pop('DJANGO_SETTINGS_MODULE', None)\n"
        "import config.wsgi\n"
        "from django.conf import settings\n"
        "from config.celery_app import app\n"
        "print(os.environ['DJANGO_SETTINGS_MODULE'], settings.DEBUG, app.conf.broker_url)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=production_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["config.settings.production", "False", "redis://redis.invalid:6379/0"]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("persistent", "60 True False None"),
        ("pool", "0 False False {'min_size': 2, 'max_size': 8, 'timeout': 10}"),
        ("pgbouncer", "0 False True None"),
    ],
)
def test_database_connections_switch_between_persistent_pool_and_pgbouncer(mode, expected):
    code = (
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        "db = settings.DATABASES['default']\n"
        "print(db['CONN_MAX_AGE'], db.get('CONN_HEALTH_CHECKS', False), db.get('DISABLE_SERVER_SIDE_CURSORS', False),"
        " db.get('OPTIONS', {}).get('pool'))\n"
    )
    env = production_env(DATABASE_CONNECTIONS=mode, CONN_MAX_AGE=None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_sentry_starts_only_with_a_dsn_and_always_with_the_scrubber():
    code = (
        "import django; django.setup()\n"
        "import sentry_sdk\n"
        "client = sentry_sdk.get_client()\n"
        "hook = client.options.get('before_send') if client.is_active() else None\n"
        "print(client.is_active(), getattr(hook, '__qualname__', None), client.options.get('send_default_pii'))\n"
    )

    def started(**changes):
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=production_env(**changes), capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert started(SENTRY_DSN=None)[0] == "False"
    assert started(SENTRY_DSN="https://public@sentry.invalid/1") == ["True", "scrub_event", "False"]
