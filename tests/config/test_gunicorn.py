"""config/gunicorn.conf.py: what gunicorn reads, checked by gunicorn itself."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def gunicorn_settings(**env) -> dict[str, str]:
    """gunicorn's own view of the config file (`--print-config`), as name -> value."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GUNICORN_")} | env
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "--print-config", "config.wsgi"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {
        name.strip(): value.strip()
        for name, _, value in (line.partition("=") for line in result.stdout.splitlines())
        if value
    }


def test_workers_follow_the_cpu_count_and_forwarded_headers_come_only_from_the_proxy(tmp_path):
    settings = gunicorn_settings(PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    assert settings["workers"] == str(os.cpu_count() * 2 + 1)
    assert settings["forwarded_allow_ips"] == "['127.0.0.1', '::1']"
    assert settings["timeout"] == "30"
    assert settings["accesslog"] == "-"
    assert "x-request-id" in settings["access_log_format"]


def test_the_environment_overrides_each_value(tmp_path):
    settings = gunicorn_settings(
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path), GUNICORN_WORKERS="3", GUNICORN_BIND="127.0.0.1:8899",
        GUNICORN_FORWARDED_ALLOW_IPS="10.0.0.5",
    )  # fmt: skip
    assert settings["workers"] == "3"
    assert settings["bind"] == "['127.0.0.1:8899']"
    assert settings["forwarded_allow_ips"] == "['10.0.0.5']"
