"""Private files in an S3-compatible bucket, as production keeps them: against a real local S3 server (moto in
server mode), never a mock of boto3. In CI this fails rather than skips when the server cannot run."""

import urllib.request

import boto3
import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.urls import reverse

from billing.bills.documents import bill_pdf_ensure
from billing.models import Bill
from billing.storage import private_storage
from tests.factories import make_bill
from tests.s3_support import S3_KEY_ID, S3_REGION, S3_SECRET, moto_s3_server, s3_storage_settings
from tests.staff_support import staff_login

BUCKET = "billpay-private-test"


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_client(s3_endpoint):
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name=S3_REGION, aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
    )  # fmt: skip
    client.create_bucket(Bucket=BUCKET)
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def s3_private(settings, s3_endpoint, s3_client):
    settings.STORAGES = {**settings.STORAGES, "private": s3_storage_settings(s3_endpoint, BUCKET)}
    return s3_client


def test_a_bill_pdf_is_stored_in_the_bucket_privately_and_served_through_the_checked_view(
    s3_private, client, staff_user, account
):
    bill = make_bill(account, amounts=(4200,))
    stored = bill_pdf_ensure(bill=bill)

    keys = [item["Key"] for item in s3_private.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == [f"private/{stored.name}"]
    in_bucket = s3_private.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read()
    assert in_bucket.startswith(b"%PDF")
    grants = s3_private.get_object_acl(Bucket=BUCKET, Key=keys[0])["Grants"]
    assert all("URI" not in grant["Grantee"] for grant in grants), grants  # no AllUsers / AuthenticatedUsers grant
    assert Bill.objects.get(pk=bill.pk).pdf.name == stored.name

    # A clerk without the permission gets nothing; with it, the view streams the bucket's bytes.
    staff_login(client, staff_user)
    url = reverse("billing:staff_bill_pdf", args=[bill.pk])
    assert client.get(url).status_code in {302, 403}
    staff_user.user_permissions.add(Permission.objects.get(content_type__app_label="billing", codename="view_bill"))
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == in_bucket
    assert "no-store" in response["Cache-Control"]


def test_links_to_private_files_are_signed_and_expire(s3_private):
    storage = private_storage()
    name = storage.save("imports/upload.csv", ContentFile(b"account,amount\n1,2\n"))
    url = storage.url(name)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.read() == b"account,amount\n1,2\n"
    storage.delete(name)
    assert not storage.exists(name)
