"""The first thing a new person does: sign in to the admin with the printed staff login and download a demo bill."""

import re

from django.core.management import call_command
from django.urls import reverse

from billing.demo import DEMO_CLERK_EMAIL, DEMO_STAFF_EMAIL, DEMO_STAFF_PASSWORD
from billing.models import Bill


def test_printed_staff_login_reaches_a_demo_bill_pdf(client, db, capsys):
    call_command("seed_demo")
    printed = capsys.readouterr().out
    assert f"{DEMO_STAFF_EMAIL} / {DEMO_STAFF_PASSWORD}" in printed
    assert client.login(email=DEMO_STAFF_EMAIL, password=DEMO_STAFF_PASSWORD)
    bill = Bill.objects.filter(status=Bill.Status.OPEN).order_by("pk").first()
    page = client.get(reverse("admin:billing_bill_change", args=[bill.pk])).content.decode()
    pdf_url = re.search(r'href="([^"]+/pdf/)"', page).group(1)
    response = client.get(pdf_url)
    assert response["Content-Type"] == "application/pdf"
    body = b"".join(response.streaming_content)
    assert body.startswith(b"%PDF-")
    assert bill.number in response["Content-Disposition"]


def test_demo_clerk_is_in_the_clerk_role(db):
    call_command("seed_demo")
    from django.contrib.auth import get_user_model

    clerk = get_user_model().objects.get(email=DEMO_CLERK_EMAIL)
    assert clerk.groups.filter(name="Clerk").exists()
    assert clerk.has_perm("billing.record_offline_payment")
    assert clerk.has_perm("billing.view_bill")
    assert not clerk.has_perm("billing.void_bill")
