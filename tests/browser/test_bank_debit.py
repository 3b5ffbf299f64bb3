"""Bank debits on a 360 px phone, against localstripe: a guest pays a bill by IBAN under a one-time mandate, and a
signed-in payer saves a bank account with a standing mandate, turns on autopay and the sweeper debits it. Every new
page is clean under axe-core and the Content-Security-Policy, and the IBAN only ever goes to our own server."""

import datetime as dt
import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import AccountLink
from accounts.services import account_link_grant
from billing.autopay.charging import autopay_charge
from billing.autopay.planning import autopay_plan, autopay_sweep
from billing.models import AutopayCharge, BankMandate, Bill, Payment
from tests import stripe_support
from tests.billing.bank_support import sepa_biller
from tests.browser.conftest import axe_serious_violations, has_horizontal_overflow
from tests.factories import BillerFactory, CustomerAccountFactory, make_bill
from tests.notice_sending import celery_eager  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_eager")]

PASSWORD = "A-payer-Passw0rd!"
IBAN = "DE89 3704 0044 0532 0130 00"


def assert_page_is_clean(page):
    assert not has_horizontal_overflow(page)
    assert axe_serious_violations(page) == []
    assert getattr(page, "csp_violations", []) == []


def test_a_guest_pays_a_bill_by_iban_with_the_mandate(live_server, phone, stripe_live):
    cache.clear()
    biller = sepa_biller(BillerFactory())
    account = CustomerAccountFactory(biller=biller, postal_code="50667")
    bill = make_bill(account, amounts=(6480,))
    phone.goto(live_server.url + reverse("billing:pay"))
    phone.get_by_label("Account number").fill(account.account_number)
    phone.get_by_label("Postal code of the service address").fill("50667")
    phone.get_by_role("button", name="Find my account").click()
    phone.wait_for_url(live_server.url + reverse("billing:pay_account"))

    phone.get_by_label("E-mail for your receipt").fill("jana@example.com")
    phone.get_by_label("Pay from a bank account (SEPA)").check()
    expect(phone.locator("#card-element")).to_be_hidden()
    bank_button = phone.get_by_role("button", name="Pay from my bank account")
    expect(bank_button).to_be_visible()
    assert biller.sepa_creditor_identifier in phone.locator("#mandate-body").inner_text()
    assert_page_is_clean(phone)

    # A mistyped IBAN: a message on the field, nothing sent to the gateway.
    phone.get_by_label("IBAN").fill("DE89 3704 0044 0532 0130 01")
    phone.get_by_label("Account holder's name").fill("Jana Novak")
    phone.get_by_label("I accept the direct debit mandate above.").check()
    bank_button.click()
    error = phone.locator("#id_iban-bank-error")
    expect(error).to_have_text(re.compile("a character may be mistyped"))
    assert phone.get_by_label("IBAN").get_attribute("aria-invalid") == "true"
    assert stripe_support.payment_intents(stripe_live) == []
    assert_page_is_clean(phone)

    phone.get_by_label("IBAN").fill(IBAN)
    bank_button.click()
    phone.wait_for_url(f"{live_server.url}/pay/receipt/**")
    assert phone.get_by_role("heading", name="Thank you, your payment is complete").is_visible()
    payment = Payment.objects.get()
    assert (payment.method, payment.status, payment.channel) == ("sepa_debit", "succeeded", "guest_web")
    assert phone.get_by_test_id("card-summary").inner_text() == "Commerzbank •••• 3000"
    assert phone.get_by_text(payment.mandate.reference).is_visible()
    assert_page_is_clean(phone)
    mandate = BankMandate.objects.get()
    assert mandate.ip == "127.0.0.1" and "Chrome" in mandate.user_agent
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID
    assert len(stripe_support.payment_intents(stripe_live)) == 1


def test_a_signed_in_payer_sets_bank_autopay_and_the_sweeper_debits_it(
    live_server, phone, stripe_live, django_user_model, django_capture_on_commit_callbacks
):
    cache.clear()
    mail.outbox = []
    biller = sepa_biller(BillerFactory())
    account = CustomerAccountFactory(biller=biller, holder_name="Jana Novak")
    bill = make_bill(account, amounts=(4200,), due_in_days=1)
    user = django_user_model.objects.create_user(email="jana@example.com", password=PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    account_link_grant(user=user, account=account, via=AccountLink.Via.LOOKUP)

    phone.goto(live_server.url + reverse("account_login"))
    phone.get_by_label("Email").fill(user.email)
    phone.get_by_label("Password").fill(PASSWORD)
    phone.get_by_role("button", name="Sign In").click()
    phone.wait_for_url(re.compile(r".*/me/$"))
    phone.get_by_role("link", name=f"Set up autopay for account {account.account_number}").click()
    phone.wait_for_url(live_server.url + reverse("accounts:autopay", args=[account.pk]))
    phone.get_by_role("link", name="Pay from a bank account (SEPA)").click()
    phone.wait_for_url(live_server.url + reverse("accounts:autopay_bank", args=[account.pk]))
    assert "at least 3 days before it" in phone.locator(".mandate-body").inner_text()
    assert_page_is_clean(phone)

    phone.get_by_label("IBAN").fill(IBAN)
    phone.get_by_label("Account holder's name").fill("Jana Novak")
    phone.get_by_label("I accept the direct debit mandate above.").check()
    phone.get_by_role("button", name="Save the bank account").click()
    # A payment setting needs a recent sign-in; signing in a moment ago is one (issue 10, item 8).
    phone.wait_for_url(re.compile(r".*/autopay/\?card=\d+$"))
    label = "Bank account at Commerzbank ending 3000"
    assert phone.get_by_label(label).is_checked()
    phone.get_by_label("I agree to the autopay authorisation above.").check()
    phone.get_by_role("button", name="Turn on autopay").click()
    phone.wait_for_url(live_server.url + reverse("accounts:autopay", args=[account.pk]))
    expect(phone.get_by_test_id("autopay-status").get_by_text("On")).to_be_visible()
    assert_page_is_clean(phone)
    mandate = BankMandate.objects.get()
    assert (mandate.usage, mandate.user_id) == ("multi_use", user.pk)

    # Beat and a worker, by hand: the pre-notification now, the debit once its period has passed.
    with django_capture_on_commit_callbacks(execute=True):
        autopay_plan()
    charge = AutopayCharge.objects.get(bill=bill)
    assert charge.debit_notice_at is not None
    with django_capture_on_commit_callbacks(execute=True):
        claimed = autopay_sweep(now=timezone.now() + dt.timedelta(days=4), enqueue=False).claimed
        assert claimed == [charge.pk] and autopay_charge(charge_id=charge.pk) == "succeeded"
    paid = Payment.objects.get()
    assert (paid.channel, paid.method, paid.mandate_id) == ("autopay", "sepa_debit", mandate.pk)
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID
    assert len(stripe_support.payment_intents(stripe_live)) == 1

    phone.goto(live_server.url + reverse("accounts:payment_methods"))
    expect(phone.get_by_text(f"Mandate {mandate.reference}")).to_be_visible()
    assert_page_is_clean(phone)
    phone.get_by_role("button", name=f"Revoke the mandate for {label}").click()
    phone.wait_for_url(live_server.url + reverse("accounts:payment_methods"))
    expect(phone.get_by_text("Mandate revoked: not debited")).to_be_visible()
    mandate.refresh_from_db()
    assert mandate.status == "revoked"
