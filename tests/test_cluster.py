"""The production topology for real (scripts/cluster.py): nginx with TLS in front of two gunicorn instances on
production settings, their own PostgreSQL, Redis, S3 server (moto) and localstripe. A payer signs in and pays a bill
through nginx; the bill's PDF rendered by one instance is then served by the other from the shared bucket.

It starts real servers from Debian's packages (scripts/test.sh installs them): in CI it fails, never skips, when
one cannot run. It takes a minute or two, mostly migrations on the fresh database.
"""

import re
import shutil
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import boto3
import pytest
import requests
from pypdf import PdfReader

from tests.worker_support import unavailable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from cluster import S3_BUCKET, S3_KEY_ID, S3_SECRET, Cluster, Ports, postgres_bin  # noqa: E402

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = [
        name
        for name in ("nginx", "redis-server", "openssl")
        if not (shutil.which(name) or Path(f"/usr/sbin/{name}").exists())
    ]
    try:
        postgres_bin()
    except RuntimeError:
        missing.append("postgresql")
    if missing:
        unavailable(f"the cluster test needs {', '.join(missing)} (scripts/test.sh installs them as root)")
    running = Cluster(state=tmp_path_factory.mktemp("cluster"), ports=Ports.pick(0, 2), web_workers=1)
    try:
        running.start(workers=False, demo=False)
    except Exception as exc:  # noqa: BLE001 - whatever failed, the logs say why
        pytest.fail(f"the cluster did not start: {exc}")
    yield running
    running.stop()


def seeded(cluster) -> dict:
    result = subprocess.run(
        [sys.executable, "bench/load/seed.py", "--pay", "0", "--browse", "0", "--payers", "1"],
        cwd=ROOT, env=cluster.env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    import json

    return json.loads(result.stdout)


def csrf(response) -> str:
    return CSRF.search(response.text).group(1)


def test_a_payment_through_nginx_and_the_pdf_from_the_other_instance(cluster):
    data = seeded(cluster)
    payer = data["payers"][0]
    browser = requests.Session()
    browser.trust_env = False  # no proxy or CA bundle from the environment: loopback, and this cluster's certificate
    browser.verify = str(cluster.cert)
    browser.headers["Referer"] = cluster.url + "/"

    # Sign in and pay the bill, all through nginx (which spreads the requests over both instances).
    page = browser.get(f"{cluster.url}/accounts/login/")
    signed_in = browser.post(
        f"{cluster.url}/accounts/login/",
        {"csrfmiddlewaretoken": csrf(page), "login": payer["email"], "password": data["password"]},
    )
    assert signed_in.status_code == 200 and signed_in.url == f"{cluster.url}/me/", signed_in.url
    account_page = browser.get(f"{cluster.url}/me/accounts/{payer['account_id']}/")
    screen = browser.post(
        f"{cluster.url}/me/accounts/{payer['account_id']}/pay/", {"csrfmiddlewaretoken": csrf(account_page)}
    )
    assert screen.status_code == 200 and "/pay/account/" in screen.url, screen.url
    token = csrf(screen)
    started = browser.post(
        f"{cluster.url}/pay/account/start/",
        {"csrfmiddlewaretoken": token, "amount_choice": "full", "receipt_email": payer["email"]},
        headers={"X-CSRFToken": token},
    )
    assert started.status_code == 200, started.text
    intent = started.json()["paymentIntent"]
    confirmed = browser.post(
        f"{cluster.url}/pay/account/confirm/",
        {"payment_intent": intent, "payment_method": "pm_card_visa"},
        headers={"X-CSRFToken": token},
    )
    assert confirmed.json()["status"] == "succeeded", confirmed.text
    receipt = browser.get(cluster.url + confirmed.json()["next"])
    assert receipt.status_code == 200 and "/pay/receipt/" in receipt.url

    # The PDF: rendered and stored by instance 1, then served by instance 2. Each is asked directly, with what
    # nginx would forward (the payer's cookies, X-Forwarded-Proto), so we know which instance answered.
    cookies = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)
    path = f"/me/bills/{payer['bill_id']}/pdf/"

    def from_instance(index: int) -> requests.Response:
        return requests.get(
            f"http://127.0.0.1:{cluster.ports.web[index]}{path}",
            headers={"Cookie": cookies, "X-Forwarded-Proto": "https", "Host": f"127.0.0.1:{cluster.ports.nginx}"},
            timeout=60,
        )

    first = from_instance(0)
    assert first.status_code == 200 and first.headers["Content-Type"] == "application/pdf"
    s3 = boto3.client(
        "s3", endpoint_url=cluster.s3_url, region_name="us-east-1", aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
    )  # fmt: skip
    stored = [o["Key"] for o in s3.list_objects_v2(Bucket=S3_BUCKET, Prefix="private/bills/").get("Contents", [])]
    assert len(stored) == 1, stored
    second = from_instance(1)
    assert second.status_code == 200
    assert second.content == first.content == s3.get_object(Bucket=S3_BUCKET, Key=stored[0])["Body"].read()
    # Not rendered again on instance 2: still the one stored file, and the PDF shows the bill as paid.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=S3_BUCKET, Prefix="private/bills/")["Contents"]] == stored
    text = "\n".join(p.extract_text() for p in PdfReader(BytesIO(second.content)).pages)
    assert "$0.00" in text, text

    served = {i: (cluster.state / "logs" / f"web{i + 1}.log").read_text() for i in (0, 1)}
    assert f"GET {path}" in served[0] and f"GET {path}" in served[1]
    assert all("/pay/account/" in log or "/me/" in log for log in served.values())  # nginx used both instances
