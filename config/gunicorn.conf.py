"""gunicorn's settings for Billpay: `gunicorn -c config/gunicorn.conf.py config.wsgi`.

Every value can be changed by an environment variable of the same name in capitals with a GUNICORN_ prefix
(GUNICORN_BIND, GUNICORN_WORKERS, ...). docs/deploy.md explains how the instances sit behind nginx.
"""

import multiprocessing
import os
import tempfile

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers: requests are short and database-bound; (2 × cores) + 1 is gunicorn's own rule of thumb.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
# A request running longer than this is killed and its worker replaced (PDF rendering is the slowest, a few seconds).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Replace each worker now and then, staggered, so a slow leak never grows without bound.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "200"))
# The proxy's X-Forwarded-Proto is believed only from these addresses (the load balancer); config/proxy.py does the
# same for the client address, from TRUSTED_PROXIES.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
proxy_allow_ips = forwarded_allow_ips

accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
errorlog = os.environ.get("GUNICORN_ERRORLOG", "-")
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# The request id nginx sent (and Django echoes) on each access line, to follow a request into the app's own logs.
access_log_format = os.environ.get(
    "GUNICORN_ACCESS_LOG_FORMAT",
    '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s ua="%(a)s"',
)
proc_name = os.environ.get("GUNICORN_PROC_NAME", "billpay-web")
# /dev/shm keeps the worker heartbeat off a slow or read-only disk (containers).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# Metrics from all workers add up (prometheus_client's multiprocess mode): one folder per gunicorn instance.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="billpay-metrics-")
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


def on_starting(server):
    # Files left by an earlier run of this instance would add stale counts.
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.remove(os.path.join(folder, name))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
