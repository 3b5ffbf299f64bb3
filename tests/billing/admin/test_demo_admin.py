"""The first thing a new person does: sign in to the admin with the printed staff login and download a demo bill."""

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.demo import DEMO_CLERK_EMAIL, DEMO_STAFF_EMAIL, DEMO_STAFF_PASSWORD
from billing.models import Bill
from tests.staff_support import totp_code


def sign_in(client, email, password, code):
    """The admin's sign-in, as a person does it: password, then the authenticator's code."""
    client.post(f"{reverse('account_login')}?next=/admin/", {"login": email, "password": password})
    client.post(reverse("mfa_authenticate"), {"code": code})
    return "_auth_user_id" in client.session


def test_printed_staff_login_reaches_a_demo_bill_pdf(client, db, capsys):
    call_command("seed_demo")
    printed = capsys.readouterr().out
    assert f"{DEMO_STAFF_EMAIL} / {DEMO_STAFF_PASSWORD}" in printed
    secret = re.search(rf"{re.escape(DEMO_STAFF_EMAIL)}: ([A-Z2-7]{{32}})", printed).group(1)
    assert sign_in(client, DEMO_STAFF_EMAIL, DEMO_STAFF_PASSWORD, totp_code(secret))
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


def test_seeding_again_keeps_the_printed_second_factor(db, capsys):
    call_command("seed_demo")
    first = capsys.readouterr().out
    call_command("seed_demo")
    assert re.findall(r"[A-Z2-7]{32}", capsys.readouterr().out) == re.findall(r"[A-Z2-7]{32}", first) != []


def test_the_demo_code_command_signs_the_clerk_in(client, db, settings):
    call_command("seed_demo", stdout=StringIO())
    settings.DEBUG = True  # the local run; the command refuses anywhere else
    out = StringIO()
    call_command("demo_totp_code", "--email", DEMO_CLERK_EMAIL, stdout=out)
    code = out.getvalue().strip()
    assert re.fullmatch(r"\d{6}", code)
    assert sign_in(client, DEMO_CLERK_EMAIL, DEMO_STAFF_PASSWORD, code)
    assert client.get(reverse("admin:index")).status_code == 200


def test_the_demo_code_command_is_for_the_local_demo_only(db, settings, django_user_model):
    call_command("seed_demo", stdout=StringIO())
    settings.DEBUG = False
    with pytest.raises(CommandError, match="local demo"):
        call_command("demo_totp_code", stdout=StringIO())
    settings.DEBUG = True
    root = django_user_model.objects.create_superuser(email="root@example.com", password="pw-Root-123")
    call_command("staff_mfa_enrol", "--email", root.email, stdout=StringIO())
    with pytest.raises(CommandError, match="demo"):
        call_command("demo_totp_code", "--email", root.email, stdout=StringIO())


def test_the_demo_has_one_account_on_an_active_plan_shown_in_the_json(db):
    import json

    from billing.models import PaymentPlan

    call_command("seed_demo", stdout=StringIO())
    call_command("seed_demo", stdout=StringIO())  # seeding again adds no second plan
    assert PaymentPlan.objects.count() == 1
    out = StringIO()
    call_command("seed_demo", "--json", stdout=out)
    rows = json.loads(out.getvalue())
    on_plan = [r for r in rows if r["payment_plan"]]
    assert len(on_plan) == 1 and all("payment_plan" in r for r in rows)
    plan = on_plan[0]["payment_plan"]
    assert plan["status"] == "active" and plan["next"]["number"] == 1
    assert [i["status"] for i in plan["instalments"]] == ["paid", "scheduled", "scheduled", "scheduled"]
    assert plan["paid"] == plan["instalments"][0]["amount"]
