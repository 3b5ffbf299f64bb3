"""The production topology on one machine: nginx (TLS) load-balancing two or more gunicorn instances, two Celery
workers on different queues plus beat, PostgreSQL, Redis, a local S3 server (moto) and localstripe, every Django
process on `config.settings.production`. `scripts/cluster.sh` is the command; docs/deploy.md explains the parts.

Each part is a real server started here from the machine's own packages, on loopback ports, with its state in a
fresh folder: a PostgreSQL instance of its own (initdb), a Redis of its own, so nothing touches other databases.
The load test (bench/load/run_load.py) and tests/test_cluster.py drive the same `Cluster` class.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
WEBHOOK_SECRET = "whsec_billpay_cluster"
S3_BUCKET = "billpay-private"
S3_KEY_ID = "billpay-cluster"
S3_SECRET = "billpay-cluster-secret"
# What each Celery worker consumes: payments beside the quick sweepers; notices beside the bulk jobs.
WORKERS = {
    "worker-payments": ["payments", "default"],
    "worker-notifications": ["notifications", "bulk"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    what: str, check, *, timeout: float = 60, process: subprocess.Popen | None = None, log: Path | None = None
):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - not up yet, whatever the reason
            last = exc
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not come up ({last}).\n{tail}")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL's server programs are missing (Debian: apt-get install postgresql)")
    return Path(found[-1]).parent


@dataclass
class Ports:
    nginx: int
    web: list[int]
    postgres: int
    redis: int
    s3: int
    localstripe: int

    @classmethod
    def pick(cls, base: int, web_count: int) -> Ports:
        if base:
            return cls(base, [base + 1 + i for i in range(web_count)], base + 10, base + 11, base + 12, base + 13)
        return cls(
            free_port(), [free_port() for _ in range(web_count)], free_port(), free_port(), free_port(), free_port()
        )


@dataclass
class Cluster:
    state: Path
    ports: Ports
    web_workers: int = 2
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(50))

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.ports.nginx}"

    @property
    def cert(self) -> Path:
        return self.state / "tls" / "cert.pem"

    @property
    def localstripe_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.localstripe}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.ports.postgres}/billpay"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports.redis}/0"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of every Django process: production settings, pointed at this cluster's servers."""
        origins = f"{self.url},https://localhost:{self.ports.nginx}"
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "STRIPE_", "S3_", "GUNICORN_"))},
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DJANGO_SECRET_KEY": self.secret_key,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_CSRF_TRUSTED_ORIGINS": origins,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "S3_BUCKET": S3_BUCKET,
            "S3_ENDPOINT_URL": self.s3_url,
            "S3_REGION": "us-east-1",
            "S3_ACCESS_KEY_ID": S3_KEY_ID,
            "S3_SECRET_ACCESS_KEY": S3_SECRET,
            "STRIPE_API_BASE": self.localstripe_url,
            "STRIPE_SECRET_KEY": "sk_test_localstripe",
            "STRIPE_PUBLISHABLE_KEY": "pk_test_localstripe",
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "STRIPE_JS_URL": f"{self.localstripe_url}/js.stripe.com/v3/",
            "SITE_URL": self.url,
            "TRUSTED_PROXIES": "127.0.0.1",
            "VAR_DIR": str(self.state / "var"),
            "STATIC_ROOT": str(self.state / "static"),
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(self.state / "mail"),
            "SMS_BACKEND": "file",
            "SMS_FILE_PATH": str(self.state / "sms"),
            "LOG_FORMAT": "json",
            "PYTHONPATH": str(ROOT),
            **extra,
        }

    def _spawn(
        self, name: str, command: list[str], *, env: dict | None = None, user: str | None = None
    ) -> subprocess.Popen:
        log = self.state / "logs" / f"{name}.log"
        if user:
            command = ["runuser", "-u", user, "--", *command]
        with open(log, "ab") as handle:
            process = subprocess.Popen(
                command, cwd=ROOT, env=env or self.env(), stdout=handle, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopping (or killing) it takes its children too
            )  # fmt: skip
        self.processes[name] = process
        return process

    def _manage(self, *args: str) -> str:
        result = subprocess.run(
            [PY, "manage.py", *args], cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    # --- the parts, in start order ----------------------------------------------------------------------------------

    def _tls(self) -> None:
        (self.state / "tls").mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout", str(self.state / "tls" / "key.pem"), "-out", str(self.cert),
            ],
            check=True, capture_output=True,
        )  # fmt: skip

    def _postgres(self) -> None:
        bindir = postgres_bin()
        data = Path(tempfile.mkdtemp(prefix="billpay-cluster-pg-"))
        self.pg_data = data
        user = "postgres" if os.geteuid() == 0 else None  # initdb refuses to run as root
        if user:
            shutil.chown(data, user, user)
        run_as = ["runuser", "-u", user, "--"] if user else []
        subprocess.run(
            [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"],
            check=True, capture_output=True,
        )  # fmt: skip
        command = [
            str(bindir / "postgres"), "-D", str(data), "-p", str(self.ports.postgres), "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={data}", "-c", "max_connections=200", "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
        ]  # fmt: skip
        process = self._spawn("postgres", command, env=dict(os.environ), user=user)
        log = self.state / "logs" / "postgres.log"
        wait_for("PostgreSQL", lambda: port_open(self.ports.postgres), process=process, log=log)
        subprocess.run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.ports.postgres), "-U", "postgres", "billpay"],
            check=True, capture_output=True,
        )  # fmt: skip

    def _redis(self) -> None:
        command = [
            "redis-server",
            "--port",
            str(self.ports.redis),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        process = self._spawn("redis", command, env=dict(os.environ))
        wait_for("Redis", lambda: port_open(self.ports.redis), process=process, log=self.state / "logs" / "redis.log")

    def _s3(self) -> None:
        command = [PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.ports.s3)]
        process = self._spawn("s3", command, env=dict(os.environ))
        wait_for(
            "the S3 server (moto)",
            lambda: urllib.request.urlopen(f"{self.s3_url}/moto-api/", timeout=1).status == 200,
            process=process, log=self.state / "logs" / "s3.log",
        )  # fmt: skip
        import boto3

        boto3.client(
            "s3", endpoint_url=self.s3_url, region_name="us-east-1", aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
        ).create_bucket(Bucket=S3_BUCKET)  # fmt: skip

    def _localstripe(self) -> None:
        command = [
            PY, "scripts/localstripe_server.py", "--port", str(self.ports.localstripe),
            "--webhook-url", f"{self.url}/stripe/webhook/", "--webhook-secret", WEBHOOK_SECRET,
        ]  # fmt: skip
        # localstripe delivers webhooks to nginx over TLS: it trusts this cluster's certificate and no other.
        process = self._spawn("localstripe", command, env={**os.environ, "SSL_CERT_FILE": str(self.cert)})
        log = self.state / "logs" / "localstripe.log"
        wait_for("localstripe", lambda: b"localstripe ready at" in log.read_bytes(), process=process, log=log)

    def _django(self, demo: bool) -> str:
        for folder in ("var", "mail", "sms", "static"):
            (self.state / folder).mkdir(parents=True, exist_ok=True)
        self._manage("migrate", "--noinput", "-v", "0")
        self._manage("collectstatic", "--noinput", "-v", "0")
        return self._manage("seed_demo") if demo else ""

    def start_web(self, index: int) -> None:
        metrics = self.state / "metrics" / f"web{index + 1}"
        shutil.rmtree(metrics, ignore_errors=True)
        metrics.mkdir(parents=True)
        env = self.env(
            GUNICORN_BIND=f"127.0.0.1:{self.ports.web[index]}",
            GUNICORN_WORKERS=str(self.web_workers),
            GUNICORN_PROC_NAME=f"billpay-web{index + 1}",
            PROMETHEUS_MULTIPROC_DIR=str(metrics),
        )
        command = [PY, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi"]
        process = self._spawn(f"web{index + 1}", command, env=env)
        wait_for(
            f"gunicorn web{index + 1}",
            lambda: self._get(f"http://127.0.0.1:{self.ports.web[index]}/healthz/live/") == 200,
            process=process, log=self.state / "logs" / f"web{index + 1}.log",
        )  # fmt: skip

    def start_worker(self, name: str) -> None:
        queues = WORKERS[name]
        command = [
            PY, "-m", "celery", "-A", "config", "worker", "-Q", ",".join(queues), "--hostname", f"{name}@%h",
            "--concurrency", "2", "--prefetch-multiplier", "1", "--without-gossip", "--without-mingle",
            "--loglevel", "INFO",
        ]  # fmt: skip
        process = self._spawn(name, command)
        log = self.state / "logs" / f"{name}.log"
        wait_for(f"Celery {name}", lambda: b"ready." in log.read_bytes(), process=process, log=log)

    def _beat(self) -> None:
        schedule = self.state / "var" / "celerybeat-schedule"
        self._spawn(
            "beat", [PY, "-m", "celery", "-A", "config", "beat", "--schedule", str(schedule), "--loglevel", "INFO"]
        )

    def _nginx(self) -> None:
        upstreams = "\n".join(
            f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;" for port in self.ports.web
        )
        temp = self.nginx_temp = Path(tempfile.mkdtemp(prefix="billpay-cluster-nginx-"))
        temp.chmod(0o777)
        conf = (ROOT / "scripts" / "cluster-nginx.conf").read_text()
        for token, value in {
            "STATE": self.state, "TEMP": temp, "UPSTREAMS": upstreams, "PORT": self.ports.nginx, "CERT": self.cert,
            "KEY": self.state / "tls" / "key.pem",
        }.items():  # fmt: skip
            conf = conf.replace(f"@{token}@", str(value))
        path = self.state / "nginx.conf"
        path.write_text(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        process = self._spawn(
            "nginx", [nginx, "-c", str(path), "-p", str(self.state), "-g", "daemon off;"], env=dict(os.environ)
        )
        wait_for("nginx", lambda: self._get(f"{self.url}/healthz/ready/") == 200, process=process,
                 log=self.state / "logs" / "nginx-error.log")  # fmt: skip

    def _get(self, url: str) -> int:
        import ssl

        context = ssl.create_default_context(cafile=str(self.cert)) if url.startswith("https") else None
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def start(self, *, workers: bool = True, demo: bool = True) -> str:
        """Start every part (the Celery workers and beat only with `workers`); returns seed_demo's output (only
        with `demo`: the demo data, with a year of history, takes a while to write)."""
        shutil.rmtree(self.state, ignore_errors=True)
        (self.state / "logs").mkdir(parents=True)
        try:
            self._tls()
            self._postgres()
            self._redis()
            self._s3()
            self._localstripe()
            seeded = self._django(demo)
            for index in range(len(self.ports.web)):
                self.start_web(index)
            if workers:
                for name in WORKERS:
                    self.start_worker(name)
                self._beat()
            self._nginx()
        except BaseException:
            self.stop()
            raise
        (self.state / "cluster.json").write_text(json.dumps(self.describe_json(), indent=2))
        # `set -a; . var/cluster/cluster.env` points manage.py (or a script) at this cluster, production settings.
        own = {k: v for k, v in self.env().items() if os.environ.get(k) != v}
        (self.state / "cluster.env").write_text("".join(f"{k}='{v}'\n" for k, v in sorted(own.items())))
        return seeded

    def kill(self, name: str) -> None:
        """SIGKILL a part and all its children, as a machine dying would."""
        process = self.processes[name]
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)

    def stop(self) -> None:
        for name, process in reversed(list(self.processes.items())):
            if process.poll() is None:
                try:
                    # PostgreSQL: SIGINT is its fast shutdown; everything else stops on SIGTERM.
                    os.killpg(process.pid, signal.SIGINT if name == "postgres" else signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for folder in (getattr(self, "pg_data", None), getattr(self, "nginx_temp", None)):
            if folder:
                shutil.rmtree(folder, ignore_errors=True)

    def describe_json(self) -> dict:
        return {
            "url": self.url,
            "certificate": str(self.cert),
            "web": [f"http://127.0.0.1:{port}" for port in self.ports.web],
            "workers": {name: queues for name, queues in WORKERS.items()},
            "postgres": self.database_url,
            "redis": self.redis_url,
            "s3": f"{self.s3_url} bucket {S3_BUCKET}",
            "localstripe": self.localstripe_url,
            "logs": str(self.state / "logs"),
            "pids": {name: process.pid for name, process in self.processes.items()},
        }

    def describe(self) -> str:
        d = self.describe_json()
        lines = [
            f"Billpay cluster (production settings) at {d['url']}/  (TLS certificate {d['certificate']})",
            f"  nginx         {d['url']} -> " + ", ".join(d["web"]),
            *[f"  web{i + 1}          {url}  (gunicorn, {self.web_workers} workers)" for i, url in enumerate(d["web"])],
            *[f"  {name:<13} Celery queues {', '.join(queues)}" for name, queues in d["workers"].items()],
            "  beat          Celery beat (one)",
            f"  postgres      {d['postgres']}",
            f"  redis         {d['redis']}",
            f"  s3            {d['s3']} (moto)",
            f"  localstripe   {d['localstripe']} (Stripe stand-in; webhooks to {d['url']}/stripe/webhook/)",
            f"  health        {d['url']}/healthz/ready/   metrics: {d['web'][0]}/metrics",
            f"  logs          {d['logs']}/",
        ]
        return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--web", type=int, default=int(os.environ.get("CLUSTER_WEB", "2")), help="gunicorn instances")
    parser.add_argument("--web-workers", type=int, default=int(os.environ.get("CLUSTER_WEB_WORKERS", "2")))
    parser.add_argument(
        "--port-base",
        type=int,
        default=int(os.environ.get("CLUSTER_PORT_BASE", "8800")),
        help="nginx on this port, web on the next ones, servers from +10; 0 picks free ports",
    )
    parser.add_argument("--state", default=os.environ.get("CLUSTER_DIR", str(ROOT / "var" / "cluster")))
    args = parser.parse_args()
    cluster = Cluster(state=Path(args.state), ports=Ports.pick(args.port_base, args.web), web_workers=args.web_workers)

    stopping = False

    def stop(*_):
        nonlocal stopping
        if not stopping:
            stopping = True
            print("\nStopping the cluster ...", flush=True)
            cluster.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("Starting the cluster (PostgreSQL, Redis, S3, localstripe, migrate, gunicorn, Celery, nginx) ...", flush=True)
    seeded = cluster.start()
    print(
        f"\n{cluster.describe()}\n\n{seeded}\nPress Ctrl-C (or scripts/cluster.sh down) to stop everything.", flush=True
    )
    (cluster.state / "supervisor.pid").write_text(str(os.getpid()))
    reported = set()
    while True:
        for name, process in cluster.processes.items():
            if process.poll() is not None and name not in reported:
                reported.add(name)
                print(
                    f"{name} exited with status {process.returncode}; see {cluster.state}/logs/{name}.log", flush=True
                )
        time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
