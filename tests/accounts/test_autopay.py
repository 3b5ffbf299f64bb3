"""Autopay pages: enrol with a saved card and the mandate, pause, resume, cancel; the dashboard's status section."""

import datetime as dt
import re

import pytest
from django.urls import reverse

from billing.autopay.enrolment import autopay_consent_text, autopay_enroll
from billing.enrolment.paperless import paperless_enroll
from billing.models import AutopayEnrollment, PaperlessEnrollment
from tests.accounts import test_payment_methods as card_pages
from tests.accounts.test_dashboard import DASHBOARD_QUERY_BUDGET, _accounts_with_history, linked
from tests.billing import conftest as billing_fixtures
from tests.billing.cards_support import save_card
from tests.factories import make_bill

pytestmark = pytest.mark.django_db

# Fixtures shared with other test modules.
localstripe = billing_fixtures.localstripe
stripe_settings = billing_fixtures.stripe_settings
fresh_client = card_pages.fresh_client
make_stale = card_pages.make_stale


def enrol_form(method, **extra):
    return {"payment_method": method.pk, "charge_rule": "on_due_date", "days_before": "", "max_amount": "",
            "consent": "on"} | extra  # fmt: skip


def test_enrol_with_a_saved_card_and_the_mandate_shown(stripe_settings, fresh_client, payer, account):
    linked(payer, account)
    method = save_card(payer)
    url = reverse("accounts:autopay", args=[account.pk])
    page = fresh_client.get(url).content.decode()
    consent = autopay_consent_text(account=account)
    assert consent in page
    assert re.search(rf'<input[^>]*value="{method.pk}"[^>]*checked', page)  # the default card is chosen

    response = fresh_client.post(url, enrol_form(method, charge_rule="days_before", days_before="5", max_amount="150"))
    assert response.status_code == 302
    enrollment = AutopayEnrollment.objects.get(account=account)
    assert (enrollment.status, enrollment.days_before, enrollment.max_amount) == ("active", 5, 15000)
    assert enrollment.consent_text == consent
    assert enrollment.ip == "127.0.0.1"
    assert enrollment.payment_method_summary == method.summary


def test_no_consent_no_autopay(stripe_settings, fresh_client, payer, account):
    linked(payer, account)
    method = save_card(payer)
    form = enrol_form(method)
    del form["consent"]
    response = fresh_client.post(reverse("accounts:autopay", args=[account.pk]), form)
    assert response.status_code == 400
    assert "Tick the box to agree" in response.content.decode()
    assert not AutopayEnrollment.objects.exists()


def test_days_before_needs_a_number_and_the_maximum_must_be_positive(stripe_settings, fresh_client, payer, account):
    linked(payer, account)
    method = save_card(payer)
    url = reverse("accounts:autopay", args=[account.pk])
    assert fresh_client.post(url, enrol_form(method, charge_rule="days_before")).status_code == 400
    assert fresh_client.post(url, enrol_form(method, max_amount="0")).status_code == 400
    assert not AutopayEnrollment.objects.exists()


def test_the_card_chosen_in_the_link_is_preselected(stripe_settings, fresh_client, payer, account):
    linked(payer, account)
    save_card(payer)
    second = save_card(payer, "5555555555554444")
    page = fresh_client.get(reverse("accounts:autopay", args=[account.pk]) + f"?card={second.pk}").content.decode()
    assert re.search(rf'<input[^>]*value="{second.pk}"[^>]*checked', page)


def test_pause_resume_cancel(stripe_settings, fresh_client, payer, account):
    linked(payer, account)
    fresh_client.post(reverse("accounts:autopay", args=[account.pk]), enrol_form(save_card(payer)))
    enrollment = AutopayEnrollment.objects.get()
    for name, status in (("autopay_pause", "paused"), ("autopay_resume", "active"), ("autopay_cancel", "cancelled")):
        assert fresh_client.post(reverse(f"accounts:{name}", args=[account.pk])).status_code == 302
        enrollment.refresh_from_db()
        assert enrollment.status == status


def test_autopay_changes_need_a_recent_sign_in(stripe_settings, fresh_client, payer, account):
    linked(payer, account)
    method = save_card(payer)
    autopay_enroll(
        account=account, user=payer, payment_method=method, charge_rule="on_due_date", consent_text="x"
    )
    make_stale(fresh_client)
    assert fresh_client.get(reverse("accounts:autopay", args=[account.pk])).status_code == 200  # looking is fine
    for name in ("autopay_pause", "autopay_cancel"):
        response = fresh_client.post(reverse(f"accounts:{name}", args=[account.pk]))
        assert response["Location"].startswith(reverse("account_reauthenticate"))
    response = fresh_client.post(reverse("accounts:autopay", args=[account.pk]), enrol_form(method, replace="1"))
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    assert list(AutopayEnrollment.objects.values_list("status", flat=True)) == ["active"]


def test_another_payers_account_is_404(stripe_settings, fresh_client, make_payer, account):
    other = make_payer("other@example.com")
    linked(other, account)
    assert fresh_client.get(reverse("accounts:autopay", args=[account.pk])).status_code == 404
    assert fresh_client.post(reverse("accounts:autopay_pause", args=[account.pk])).status_code == 404


def test_dashboard_shows_autopay_paperless_and_the_upcoming_charge(stripe_settings, payer_client, payer, biller):
    from tests.factories import CustomerAccountFactory

    home, flat = CustomerAccountFactory(biller=biller), CustomerAccountFactory(biller=biller)
    linked(payer, home)
    linked(payer, flat)
    bill = make_bill(home, amounts=(4250,), due_in_days=10)
    make_bill(flat, amounts=(99900,), due_in_days=12)
    method = save_card(payer)
    for account in (home, flat):
        autopay_enroll(
            account=account, user=payer, payment_method=method, charge_rule="days_before", days_before=2,
            max_amount=50000, consent_text="x",
        )  # fmt: skip
    paperless_enroll(
        account=home, email="bills@example.com", consent_text="x", ip=None, via=PaperlessEnrollment.Via.PORTAL
    )
    html = payer_client.get(reverse("accounts:dashboard")).content.decode()
    charge_on = bill.due_date - dt.timedelta(days=2)
    assert "Next charge $42.50 on" in html and f'datetime="{charge_on:%Y-%m-%d}"' in html
    assert "Next bill $999.00 is above your maximum of $500.00 — we'll remind you instead." in html
    assert "E-mail to bills@example.com" in html and "Post (paper)" in html
    assert reverse("accounts:autopay", args=[home.pk]) in html


# Two more than the dashboard alone: autopay and paperless enrolments; a third for the next bills when autopay is on.
STATUS_QUERIES = 3


@pytest.mark.parametrize("count", [1, 50])
def test_dashboard_with_enrolments_stays_a_fixed_number_of_queries(
    stripe_settings, payer_client, payer, biller, count, django_assert_max_num_queries
):
    _accounts_with_history(payer, biller, count)
    method = save_card(payer)
    for link in payer.account_links.select_related("customer_account"):
        autopay_enroll(
            account=link.customer_account, user=payer, payment_method=method, charge_rule="on_due_date",
            consent_text="x", max_amount=1000,
        )  # fmt: skip
        paperless_enroll(
            account=link.customer_account, email=payer.email, consent_text="x", ip=None, via="portal"
        )
    with django_assert_max_num_queries(DASHBOARD_QUERY_BUDGET):
        response = payer_client.get(reverse("accounts:dashboard"))
    html = response.content.decode()
    assert html.count('data-testid="enrolment-status"') == count
    assert html.count("above your maximum") == count
    assert DASHBOARD_QUERY_BUDGET >= 8 + STATUS_QUERIES
