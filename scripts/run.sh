#!/usr/bin/env bash
# The run command: set up everything and start the portal with demo data (web, Celery worker and beat).
source "$(dirname "$0")/bootstrap.sh"
bootstrap_venv requirements-dev.txt
exec .venv/bin/python scripts/run.py "$@"
