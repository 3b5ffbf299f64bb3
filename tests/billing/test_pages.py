import re

import pytest
from django.urls import reverse

from accounts.demo import demo_accounts, demo_seed


def test_home_is_branded_with_a_pay_entry_point(client, biller):
    response = client.get(reverse("billing:home"))
    html = response.content.decode()
    assert response.status_code == 200
    assert biller.name in html
    assert f'href="{reverse("billing:pay")}"' in html
    assert '<html lang="en" dir="ltr">' in html
    assert 'name="viewport"' in html


@pytest.mark.parametrize(("language", "direction"), [("ar", "rtl"), ("fa", "rtl"), ("es", "ltr")])
def test_lang_and_dir_follow_the_language(client, biller, language, direction):
    response = client.get(reverse("billing:home"), HTTP_ACCEPT_LANGUAGE=language)
    assert f'<html lang="{language}" dir="{direction}">' in response.content.decode()


def test_language_switch_is_a_csrf_protected_post(biller):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post(reverse("set_language"), {"language": "ar", "next": "/"})
    assert response.status_code == 403
    page = strict.get(reverse("billing:home"))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    response = strict.post(reverse("set_language"), {"language": "ar", "next": "/", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert 'dir="rtl"' in strict.get(reverse("billing:home")).content.decode()


def test_pay_page_lists_the_ways_to_pay(client, biller):
    biller.remit_address = "PO Box 9\nRiverside"
    biller.save()
    html = client.get(reverse("billing:pay")).content.decode()
    assert "PO Box 9" in html
    assert biller.support_phone in html


def test_home_runs_a_fixed_number_of_queries(client, biller, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        client.get(reverse("billing:home"))


def test_home_works_before_any_biller_exists(client, db):
    response = client.get(reverse("billing:home"))
    assert response.status_code == 200
    assert "Pay a bill" in response.content.decode()


def test_demo_seed_covers_every_status_and_is_idempotent(db):
    from billing.models import Bill, CustomerAccount, Payment

    first = demo_seed()
    counts = (CustomerAccount.objects.count(), Bill.objects.count(), Payment.objects.count())
    assert set(Bill.objects.values_list("status", flat=True)) == set(Bill.Status.values)
    assert Bill.objects.filter(status=Bill.Status.OPEN, amount_paid__gt=0).exists()  # a partial payment
    second = demo_seed()
    assert (second.accounts_created, second.bills_created) == (0, 0)
    assert (CustomerAccount.objects.count(), Bill.objects.count(), Payment.objects.count()) == counts
    rows = demo_accounts(biller=first.biller)
    owing = [r for r in rows if r["open_balance_minor"]]
    assert owing and all(r["postal_code"] and r["open_bills"] for r in owing)
    for row in owing:
        assert row["open_balance_minor"] == sum(b["balance_due_minor"] for b in row["open_bills"])
    # Each open bill's pay link opens that bill's account directly.
    from django.conf import settings
    from django.test import Client

    row = owing[0]
    page = Client().get(row["open_bills"][0]["pay_link"].removeprefix(settings.SITE_URL), follow=True)
    assert row["account_number"] in page.content.decode()


def test_seed_demo_json_prints_only_json(db, capsys):
    import json

    from django.core.management import call_command

    call_command("seed_demo", "--json")
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(bill["pay_link"].startswith("http") for row in rows for bill in row["open_bills"])


def test_seed_demo_json_lists_the_bank_mandate_account(db, capsys):
    import json

    from django.core.management import call_command

    from billing.models import BankMandate

    call_command("seed_demo", "--json")
    capsys.readouterr()
    call_command("seed_demo", "--json")  # idempotent: still one mandate
    rows = json.loads(capsys.readouterr().out)
    assert BankMandate.objects.count() == 1
    (row,) = [r for r in rows if r["payment_methods"]]
    (method,) = row["payment_methods"]
    assert (method["type"], method["last4"], method["mandate_status"]) == ("sepa_debit", "3000", "active")
    assert row["currency"] == "EUR" and row["open_balance_minor"] > 0
