"""A payer on a 360 px phone signs up, verifies the e-mail address, links two accounts and sees both on the dashboard.

live_server runs in this process, so the verification e-mail is in Django's locmem outbox (settings.EMAIL_BACKEND).
"""

import os
import re

import pytest
from django.core import mail
from django.core.cache import cache
from django.urls import reverse
from playwright.sync_api import expect

from tests.browser.conftest import axe_serious_violations, has_horizontal_overflow
from tests.factories import BillerFactory, CustomerAccountFactory, make_bill

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "A-payer-Passw0rd!"
SCREENSHOTS = os.environ.get("BILLPAY_SCREENSHOTS", "")  # a folder, to look at the pages by eye


def assert_page_is_clean(page):
    assert not has_horizontal_overflow(page)
    assert axe_serious_violations(page) == []


def assert_page_is_clean_after_its_message(page):
    """A page showing a flash message is as clean as without it (the messages list sits in a status region)."""
    assert page.locator(".messages li").count() >= 1
    assert_page_is_clean(page)


def test_sign_up_verify_link_two_accounts_and_see_them(live_server, phone):
    cache.clear()  # the lookup's rate limits and allauth's live in the cache
    mail.outbox = []
    biller = BillerFactory()
    home = CustomerAccountFactory(biller=biller, holder_name="Dana Example")
    flat = CustomerAccountFactory(biller=biller, holder_name="Dana Example")
    make_bill(home, amounts=(4250,), due_in_days=7)
    make_bill(flat, amounts=(1999,), due_in_days=12)

    phone.goto(live_server.url + reverse("account_login"))
    expect(phone.get_by_role("heading", name="Sign In")).to_be_visible()
    expect(phone.get_by_role("link", name="Send me a sign-in code")).to_be_visible()
    assert_page_is_clean(phone)
    if SCREENSHOTS:
        phone.screenshot(path=f"{SCREENSHOTS}/login.png", full_page=True)

    phone.goto(live_server.url + reverse("account_signup"))
    assert_page_is_clean(phone)
    phone.get_by_label("Email").fill("dana@example.com")
    phone.get_by_label("Password", exact=True).fill(PASSWORD)
    phone.get_by_label("Password (again)").fill(PASSWORD)
    phone.get_by_role("button", name="Sign Up").click()
    phone.wait_for_url(live_server.url + reverse("account_email_verification_sent"))
    assert_page_is_clean_after_its_message(phone)

    assert [m.to for m in mail.outbox] == [["dana@example.com"]]
    confirm_path = re.search(r"https?://[^/\s]+(/\S+)", mail.outbox[0].body).group(1)
    phone.goto(live_server.url + confirm_path)
    assert_page_is_clean(phone)
    phone.get_by_role("button", name="Confirm").click()
    phone.wait_for_load_state()

    phone.goto(live_server.url + reverse("accounts:dashboard"))
    if reverse("account_login") in phone.url:  # verification by link does not sign in from a fresh session
        phone.get_by_label("Email").fill("dana@example.com")
        phone.get_by_label("Password").fill(PASSWORD)
        phone.get_by_role("button", name="Sign In").click()
        phone.wait_for_url(re.compile(r".*/me/$"))
    expect(phone.get_by_role("heading", name="My accounts")).to_be_visible()
    expect(phone.get_by_text("No accounts linked yet")).to_be_visible()
    for account in (home, flat):
        phone.get_by_role("link", name="Link an account").click()
        assert_page_is_clean(phone)
        phone.get_by_label("Account number").fill(account.account_number)
        phone.get_by_label("Postal code of the service address").fill(account.postal_code)
        phone.get_by_role("button", name="Link account").click()
        phone.wait_for_url(live_server.url + reverse("accounts:dashboard"))

    expect(phone.get_by_role("heading", name=f"Account {home.account_number}")).to_be_visible()
    expect(phone.get_by_role("heading", name=f"Account {flat.account_number}")).to_be_visible()
    expect(phone.get_by_text("$42.50").first).to_be_visible()
    expect(phone.get_by_text("$19.99").first).to_be_visible()
    pay = phone.get_by_role("button", name="Pay now").first
    assert pay.bounding_box()["height"] >= 44
    assert_page_is_clean_after_its_message(phone)
    expect(phone.get_by_role("heading", name=f"Account {flat.account_number}")).to_be_visible()
    if SCREENSHOTS:
        phone.screenshot(path=f"{SCREENSHOTS}/dashboard.png", full_page=True)

    phone.get_by_role("link", name=f"All bills and payments for account {home.account_number}").click()
    expect(phone.get_by_role("heading", name="Bills", exact=True)).to_be_visible()
    expect(phone.get_by_role("heading", name="Paperless bills")).to_be_visible()
    assert_page_is_clean(phone)
    phone.get_by_role("link", name="Unlink this account from your login").click()
    assert_page_is_clean(phone)


def test_flash_messages_are_a_list(live_server, phone):
    cache.clear()
    BillerFactory()
    phone.goto(live_server.url + reverse("billing:pay_account"))  # no grant: redirected with a flash message
    assert phone.locator(".messages li").count() == 1
    assert [v["id"] for v in axe_serious_violations(phone)] == []


def test_sign_in_and_two_factor_pages_on_a_phone(live_server, phone, django_user_model):
    from allauth.account.models import EmailAddress

    cache.clear()
    BillerFactory()
    user = django_user_model.objects.create_user(email="sam@example.com", password=PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)

    for name in ("account_request_login_code", "account_reset_password"):
        phone.goto(live_server.url + reverse(name))
        assert_page_is_clean(phone)

    phone.goto(live_server.url + reverse("account_reset_password"))
    phone.get_by_label("Email").fill("nobody@example.com")
    phone.get_by_role("button", name="Reset My Password").click()
    phone.wait_for_url(live_server.url + reverse("account_reset_password_done"))
    assert_page_is_clean(phone)

    # A wrong password: the alert is announced and the page stays clean.
    phone.goto(live_server.url + reverse("account_login"))
    phone.get_by_label("Email").fill(user.email)
    phone.get_by_label("Password").fill("not-the-password")
    phone.get_by_role("button", name="Sign In").click()
    expect(phone.get_by_role("alert")).to_be_visible()
    assert_page_is_clean(phone)
    phone.get_by_label("Password").fill(PASSWORD)
    phone.get_by_role("button", name="Sign In").click()
    phone.wait_for_load_state()

    for name in ("account_email", "account_change_password"):
        phone.goto(live_server.url + reverse(name))
        assert_page_is_clean(phone)

    phone.goto(live_server.url + reverse("mfa_index"))
    expect(phone.get_by_role("heading", name="Two-Factor Authentication")).to_be_visible()
    expect(phone.get_by_role("link", name="← My accounts")).to_be_visible()
    assert_page_is_clean(phone)
    phone.goto(live_server.url + reverse("mfa_activate_totp"))
    assert reverse("account_reauthenticate") in phone.url
    assert_page_is_clean(phone)
    phone.get_by_label("Password").fill(PASSWORD)
    phone.get_by_role("button", name="Confirm").click()
    phone.wait_for_url(live_server.url + reverse("mfa_activate_totp"))
    expect(phone.get_by_label("Authenticator secret")).to_be_visible()
    assert_page_is_clean(phone)
    if SCREENSHOTS:
        phone.screenshot(path=f"{SCREENSHOTS}/totp.png", full_page=True)

    phone.goto(live_server.url + reverse("account_logout"))
    assert_page_is_clean(phone)


def test_a_signed_in_payer_opens_each_payments_receipt_from_the_dashboard(live_server, phone, django_user_model):
    """Issue 10, item 7: "Payments and receipts" link every payment to its receipt page and PDF, and the receipt
    opens for the signed-in payer (it was a 404 unless this very browser had made the payment)."""
    from allauth.account.models import EmailAddress
    from django.utils import timezone

    from accounts.models import AccountLink
    from accounts.services import account_link_grant
    from billing.models import Payment
    from billing.payments.core import confirmation_number_new
    from billing.payments.offline import payment_record_offline

    cache.clear()
    biller = BillerFactory()
    account = CustomerAccountFactory(biller=biller)
    make_bill(account, amounts=(8000,), due_in_days=7)
    user = django_user_model.objects.create_user(email="rey@example.com", password=PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    account_link_grant(user=user, account=account, via=AccountLink.Via.LOOKUP)
    card = Payment.objects.create(
        biller=biller, account=account, confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.PORTAL, method=Payment.Method.CARD, status=Payment.Status.SUCCEEDED, currency="USD",
        amount=3000, payer_email=user.email, payment_method_summary="Visa •••• 4242", received_at=timezone.now(),
    )  # fmt: skip
    cash = payment_record_offline(account=account, amount=1000, method=Payment.Method.CASH)

    phone.goto(live_server.url + reverse("account_login"))
    phone.get_by_label("Email").fill(user.email)
    phone.get_by_label("Password").fill(PASSWORD)
    phone.get_by_role("button", name="Sign In").click()
    phone.wait_for_url(re.compile(r".*/me/$"))
    assert_page_is_clean(phone)
    for payment in (card, cash):
        expect(phone.get_by_role("link", name=f"PDF {payment.confirmation_number}")).to_be_visible()

    phone.get_by_role("link", name=f"Receipt {card.confirmation_number}").click()
    phone.wait_for_url(live_server.url + reverse("billing:pay_receipt", args=[card.confirmation_number]))
    assert phone.get_by_test_id("confirmation-number").inner_text() == card.confirmation_number
    assert phone.get_by_test_id("card-summary").inner_text() == "Visa •••• 4242"
    assert phone.get_by_test_id("still-owed").inner_text() == "$70.00"  # 80.00 billed, 10.00 cash applied (the card row is bare)
    assert_page_is_clean(phone)
    if SCREENSHOTS:
        phone.screenshot(path=f"{SCREENSHOTS}/dashboard-receipt.png", full_page=True)
    with phone.expect_download() as download:
        phone.get_by_role("link", name="Download the receipt (PDF)").click()
    assert download.value.suggested_filename == f"receipt-{card.confirmation_number}.pdf"
