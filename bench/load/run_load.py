"""The load test with faults, against the production topology (scripts/cluster.py), start to finish:

    .venv/bin/python bench/load/run_load.py [--users 40] [--spawn-rate 10] [--seconds 120]

1. starts a cluster on free ports (nginx, two gunicorn instances, two Celery workers, beat, PostgreSQL, Redis, S3,
   localstripe), production settings; seeds load data (bench/load/seed.py);
2. runs locust headless (bench/load/locustfile.py), bounded in users and time;
3. halfway, SIGKILLs gunicorn instance web1 and the notifications worker (whole process groups, as a dying machine),
   and starts them again 10 s later, as a supervisor would;
4. prints requests/s, p50/p95/p99 and the error rate; then checks (bench/load/check.py): every payment the stand-in
   charged recorded exactly once, no bill overpaid, no notice sent twice; and that every failed request was in flight
   on the killed instance when it died (nginx's log says which instance served each request, and when).

Exits non-zero if a check fails. Prints the machine it ran on. Traffic goes only to 127.0.0.1.
"""

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from cluster import WEBHOOK_SECRET, Cluster, Ports  # noqa: E402

PY = sys.executable


def machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?"
    )
    memory_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    load = open("/proc/loadavg").read().split()[:3]
    return (
        f"{os.cpu_count()} cores ({model}), {memory_kb / 1024 / 1024:.0f} GiB RAM, {platform.platform()}; "
        f"load average now {' '.join(load)} (other work on the machine counts too)"
    )


def faults(cluster: Cluster, at: float, log: list) -> None:
    time.sleep(at)
    web_port = cluster.ports.web[0]
    log.append(("kill", time.time(), web_port))
    cluster.kill("web1")
    cluster.kill("worker-notifications")
    print(f"[faults] {time.strftime('%X')} killed web1 (port {web_port}) and worker-notifications", flush=True)
    time.sleep(10)
    cluster.start_web(0)
    cluster.start_worker("worker-notifications")
    log.append(("restarted", time.time(), web_port))
    print(f"[faults] {time.strftime('%X')} web1 and worker-notifications started again", flush=True)


def nginx_errors(cluster: Cluster, kill_time: float, killed_port: int) -> tuple[int, list[str]]:
    """(5xx answers for requests in flight on the killed instance when it died, every other 5xx line)."""
    in_flight, other = 0, []
    for line in (cluster.state / "logs" / "nginx-access.log").read_text().splitlines():
        fields = line.split(" ")
        end, duration, status = float(fields[0]), float(fields[1]), int(fields[2])
        if status < 500:
            continue
        upstreams = line.split(" upstream=")[1]
        started = end - duration
        if f":{killed_port}" in upstreams and started <= kill_time + 0.5 and end >= kill_time - 0.5:
            in_flight += 1
        else:
            other.append(line)
    return in_flight, other


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--spawn-rate", type=float, default=10)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--pay-accounts", type=int, default=400)
    parser.add_argument("--state", default=str(ROOT / "var" / "load-cluster"))
    args = parser.parse_args()

    cluster = Cluster(state=Path(args.state), ports=Ports.pick(0, 2), web_workers=args.web_workers)
    print("Starting the cluster ...", flush=True)
    cluster.start(demo=False)  # only the load data: the demo's history has card payments no stand-in charged
    try:
        print(cluster.describe(), flush=True)
        seed = subprocess.run(
            [PY, "bench/load/seed.py", "--pay", str(args.pay_accounts)], cwd=ROOT, env=cluster.env(),
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        data = cluster.state / "load-data.json"
        data.write_text(seed.stdout)
        env = {
            **os.environ, "LOAD_DATA": str(data), "LOAD_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "LOAD_LOCALSTRIPE": cluster.localstripe_url, "LOAD_CERT": str(cluster.cert),
        }  # fmt: skip
        csv_prefix = cluster.state / "locust"
        command = [
            PY, "-m", "locust", "-f", "bench/load/locustfile.py", "--headless", "--users", str(args.users),
            "--spawn-rate", str(args.spawn_rate), "--run-time", f"{args.seconds}s", "--host", cluster.url,
            "--csv", str(csv_prefix), "--only-summary", "--stop-timeout", "15", "--exit-code-on-error", "0",
        ]  # fmt: skip
        fault_log: list = []
        threading.Thread(target=faults, args=(cluster, args.seconds / 2, fault_log), daemon=True).start()
        print(f"Load: {args.users} users for {args.seconds} s; faults at {args.seconds / 2:.0f} s", flush=True)
        subprocess.run(command, cwd=ROOT, env=env, check=True)

        # Let webhooks, the janitor and the outbox settle before counting.
        time.sleep(20)
        rows = list(csv.DictReader(open(f"{csv_prefix}_stats.csv")))
        total = next(r for r in rows if r["Name"] == "Aggregated")
        requests, failures = int(total["Request Count"]), int(total["Failure Count"])
        kill_time, killed_port = fault_log[0][1], fault_log[0][2]
        in_flight, other_5xx = nginx_errors(cluster, kill_time, killed_port)
        failure_rows = list(csv.DictReader(open(f"{csv_prefix}_failures.csv")))
        non_5xx = [r for r in failure_rows if not any(f"{code}" in r["Error"] for code in (502, 503, 504))]
        print("\n== Figures ==")
        print(f"machine: {machine()}")
        print(f"users {args.users}, {args.seconds} s, web: 2 gunicorn × {args.web_workers} sync workers")
        print(f"requests {requests}, {float(total['Requests/s']):.1f} req/s; latency p50 {total['50%']} ms, "
              f"p95 {total['95%']} ms, p99 {total['99%']} ms")  # fmt: skip
        print(f"errors {failures} ({100 * failures / max(requests, 1):.2f}%): {in_flight} answered 502 by nginx for "
              f"requests in flight on the killed instance; other 5xx {len(other_5xx)}; other failures "
              f"{sum(int(r['Occurrences']) for r in non_5xx)}")  # fmt: skip
        for row in sorted(rows, key=lambda r: r["Name"]):
            if row["Name"] != "Aggregated":
                print(f"  {row['Name']:<36} {row['Request Count']:>6} req  p50 {row['50%']:>5}  p95 {row['95%']:>5}  "
                      f"p99 {row['99%']:>5}  failures {row['Failure Count']}")  # fmt: skip
        for row in failure_rows:
            print(f"  failure: {row['Method']} {row['Name']}: {row['Error']} × {row['Occurrences']}")
        for line in other_5xx[:10]:
            print(f"  5xx not explained by the kill: {line}")

        print("\n== Check ==")
        errors_ok = not other_5xx and not non_5xx and failures <= in_flight
        print(("PASS " if errors_ok else "FAIL ") + f"errors outside the killed instance's in-flight requests: "
              f"{len(other_5xx) + sum(int(r['Occurrences']) for r in non_5xx) + max(0, failures - in_flight)}")  # fmt: skip
        check = subprocess.run(
            [PY, "bench/load/check.py", "--localstripe", cluster.localstripe_url, "--mail", str(cluster.state / "mail")],
            cwd=ROOT, env=cluster.env(),
        )  # fmt: skip
        (cluster.state / "result.json").write_text(json.dumps({"requests": requests, "failures": failures}))
        return 0 if errors_ok and check.returncode == 0 else 1
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
