#!/usr/bin/env bash
# The production topology on one machine (docs/deploy.md): nginx + 2 gunicorn + 2 Celery workers + beat +
# PostgreSQL + Redis + S3 (moto) + localstripe, all on production settings.
#   scripts/cluster.sh           start everything, print where each part is; Ctrl-C stops everything
#   scripts/cluster.sh up        the same, in the background (log: var/cluster.out)
#   scripts/cluster.sh down      stop a background cluster
# Options (after up, or alone): --web N, --web-workers N, --port-base P (0: free ports), --state DIR.
source "$(dirname "$0")/bootstrap.sh"

case "${1:-}" in
  down)
    pidfile="${CLUSTER_DIR:-var/cluster}/supervisor.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      kill -TERM "$(cat "$pidfile")"
      for _ in $(seq 1 30); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 1; done
      rm -f "$pidfile"
      echo "Cluster stopped."
    else
      echo "No cluster is running (no $pidfile)."
    fi
    exit 0
    ;;
  up)
    shift
    bootstrap_venv requirements-dev.txt
    ensure_cluster_packages
    mkdir -p var
    nohup .venv/bin/python scripts/cluster.py "$@" > var/cluster.out 2>&1 &
    echo "Starting in the background (log: var/cluster.out) ..."
    for _ in $(seq 1 600); do
      if grep -q "Press Ctrl-C" var/cluster.out 2>/dev/null; then sed -n '/^Billpay cluster/,/^  logs/p' var/cluster.out; exit 0; fi
      if ! kill -0 $! 2>/dev/null; then cat var/cluster.out; exit 1; fi
      sleep 1
    done
    echo "The cluster did not come up in 10 minutes; see var/cluster.out" >&2
    exit 1
    ;;
  *)
    bootstrap_venv requirements-dev.txt
    ensure_cluster_packages
    exec .venv/bin/python scripts/cluster.py "$@"
    ;;
esac
