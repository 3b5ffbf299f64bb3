"""Payment settings on a 360 px phone, against localstripe and its stand-in stripe.js.

1. A signed-in payer confirms their password, saves a card (4242…) through the Card Element, turns on autopay and
   paperless bills, then pauses autopay.
2. A guest who ticked autopay on a card payment follows the e-mailed link, proves the mailbox with an e-mailed code,
   makes a login in one step and turns on autopay with the card they paid with. Someone the link was forwarded to
   gets nothing.

Every page is axe-clean, does not scroll sideways and logs no Content-Security-Policy violation.
"""

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.cache import cache
from django.urls import reverse
from django.utils import translation
from playwright.sync_api import expect

from accounts.models import AccountLink
from accounts.services import account_link_grant
from billing.enrolment.guest import guest_enrollment_links_send, guest_enrollment_record
from billing.models import AutopayEnrollment, PaperlessEnrollment, Payment, PaymentMethod
from tests.billing.cards_support import guest_card_payment, link_token, save_card
from tests.browser.conftest import axe_serious_violations, has_horizontal_overflow
from tests.factories import BillerFactory, CustomerAccountFactory, make_bill

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "A-payer-Passw0rd!"


def assert_page_is_clean(page):
    assert not has_horizontal_overflow(page)
    assert axe_serious_violations(page) == []
    assert page.csp_violations == []


def enter_card(page, number: str) -> None:
    card = page.locator("#card-element")
    card.get_by_label("number").fill(number)
    card.get_by_label("exp_month").fill("12")
    card.get_by_label("exp_year").fill("34")
    card.get_by_label("cvc").fill("123")
    card.get_by_label("postal_code").fill("92501")


def test_save_a_card_turn_on_autopay_and_paperless_then_pause(live_server, phone, stripe_live, django_user_model):
    cache.clear()
    mail.outbox = []
    biller = BillerFactory()
    account = CustomerAccountFactory(biller=biller, holder_name="Dana Example")
    make_bill(account, amounts=(4250,), due_in_days=9)
    user = django_user_model.objects.create_user(email="dana@example.com", password=PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    account_link_grant(user=user, account=account, via=AccountLink.Via.LOOKUP)

    phone.goto(live_server.url + reverse("account_login"))
    phone.get_by_label("Email").fill(user.email)
    phone.get_by_label("Password").fill(PASSWORD)
    phone.get_by_role("button", name="Sign In").click()
    phone.wait_for_url(re.compile(r".*/me/$"))
    expect(phone.get_by_test_id("enrolment-status").get_by_text("Off")).to_be_visible()
    assert_page_is_clean(phone)

    # Saved cards → Add a card: straight in, the sign-in a moment ago is recent (issue 10, item 8; an older
    # session is asked for the password again: tests/accounts/test_recent_sign_in.py).
    phone.get_by_role("link", name="Saved cards").click()
    expect(phone.get_by_role("heading", name="No saved cards")).to_be_visible()
    assert_page_is_clean(phone)
    phone.get_by_role("link", name="Add a card").click()
    phone.wait_for_url(live_server.url + reverse("accounts:payment_method_add"))
    phone.locator("#card-element input").first.wait_for()
    assert_page_is_clean(phone)

    enter_card(phone, "4242424242424242")
    phone.get_by_role("button", name="Save card").click()
    phone.wait_for_url(live_server.url + reverse("accounts:payment_methods"))
    expect(phone.get_by_test_id("saved-card").get_by_text("Visa ending 4242, expires 12/2034")).to_be_visible()
    assert_page_is_clean(phone)
    method = PaymentMethod.objects.get(user=user)
    assert method.is_default and method.last4 == "4242"

    # Autopay from the dashboard: the default card is already chosen.
    phone.goto(live_server.url + reverse("accounts:dashboard"))
    phone.get_by_role("link", name=f"Set up autopay for account {account.account_number}").click()
    assert phone.get_by_label("Visa ending 4242, expires 12/2034").is_checked()
    assert_page_is_clean(phone)
    phone.get_by_label("Some days before the due date").check()
    phone.get_by_label("Days before the due date", exact=True).fill("3")
    phone.get_by_label("Maximum per bill (optional)").fill("100")
    phone.get_by_label("I agree to the autopay authorisation above.").check()
    phone.get_by_role("button", name="Turn on autopay").click()
    phone.wait_for_url(live_server.url + reverse("accounts:autopay", args=[account.pk]))
    expect(phone.get_by_test_id("autopay-status").get_by_text("On")).to_be_visible()
    assert "$42.50 on" in phone.get_by_test_id("autopay-next").inner_text()
    assert_page_is_clean(phone)

    # Paperless: one tick on the account page.
    phone.goto(live_server.url + reverse("accounts:account", args=[account.pk]))
    phone.get_by_label("Send my bills by e-mail instead of paper").check()
    phone.get_by_role("button", name="Save").click()
    phone.wait_for_url(re.compile(r".*#paperless$"))
    expect(phone.get_by_text("E-mail to dana@example.com").first).to_be_visible()
    assert_page_is_clean(phone)
    assert PaperlessEnrollment.objects.get(account=account).ip == "127.0.0.1"

    # Pause autopay.
    phone.goto(live_server.url + reverse("accounts:autopay", args=[account.pk]))
    phone.get_by_role("button", name="Pause autopay").click()
    phone.wait_for_url(live_server.url + reverse("accounts:autopay", args=[account.pk]))
    expect(phone.get_by_test_id("autopay-status").get_by_text("Paused")).to_be_visible()
    assert_page_is_clean(phone)
    assert AutopayEnrollment.objects.get(account=account).status == "paused"

    phone.goto(live_server.url + reverse("accounts:dashboard"))
    status = phone.get_by_test_id("enrolment-status")
    assert status.get_by_text("Paused").is_visible()
    assert status.get_by_text("E-mail to dana@example.com").is_visible()
    assert_page_is_clean(phone)


def test_guest_receipt_autopay_with_the_card_just_used(live_server, phone, stripe_live):
    """The guest payment is made through the gateway (pm_card_visa): localstripe's stand-in stripe.js can only
    produce a legacy card_… id on the payment screen, and localstripe cannot attach one of those to a customer."""
    cache.clear()
    mail.outbox = []
    account = CustomerAccountFactory(biller=BillerFactory())
    make_bill(account, amounts=(3000,), due_in_days=20)
    payment = guest_card_payment(account, email="guest@example.com")
    request = guest_enrollment_record(payment=payment, email="guest@example.com", autopay=True)
    guest_enrollment_links_send(enrollment_request_id=request.pk)
    token = link_token(mail.outbox[-1].body, "autopay")

    url = live_server.url + reverse("accounts:guest_autopay", args=[token])

    # Someone the e-mail was forwarded to opens the link on their own phone: they can ask for a code, but it goes to
    # the guest's mailbox, and without it they get no login and no card.
    stranger_context = phone.context.browser.new_context(
        viewport={"width": 360, "height": 740}, device_scale_factor=2, is_mobile=True
    )
    stranger = stranger_context.new_page()
    stranger.csp_violations = []
    stranger.goto(url)
    expect(stranger.get_by_text("guest@example.com").first).to_be_visible()
    stranger.get_by_role("button", name="E-mail me a code").click()
    expect(stranger.get_by_label("Code from the e-mail")).to_be_visible()
    assert mail.outbox[-1].to == ["guest@example.com"]
    stranger.get_by_label("Code from the e-mail").fill("000000")
    stranger.get_by_role("button", name="Create my login and save the card").click()
    expect(stranger.get_by_role("alert")).to_contain_text("That code is wrong or has expired")
    assert_page_is_clean(stranger)
    stranger_context.close()
    assert not PaymentMethod.objects.exists()
    assert not EmailAddress.objects.filter(email="guest@example.com").exists()

    # The guest, who reads the mailbox, finishes with the newest code.
    phone.goto(url)
    expect(phone.get_by_text("guest@example.com").first).to_be_visible()
    assert_page_is_clean(phone)
    phone.get_by_role("button", name="E-mail me a code").click()
    expect(phone.get_by_label("Code from the e-mail")).to_be_visible()
    assert_page_is_clean(phone)
    code = re.search(r"Your code is (\d{6})\.", mail.outbox[-1].body).group(1)
    phone.get_by_label("Code from the e-mail").fill(code)
    phone.get_by_role("button", name="Create my login and save the card").click()  # no password: codes by e-mail
    phone.wait_for_url(re.compile(r".*/autopay/\?card=\d+$"))
    method = PaymentMethod.objects.get(user__email="guest@example.com")
    with translation.override("en"):  # the page is in English; an earlier test may have left another language on
        assert phone.get_by_label(method.summary).is_checked()
    assert_page_is_clean(phone)

    phone.get_by_label("I agree to the autopay authorisation above.").check()
    phone.get_by_role("button", name="Turn on autopay").click()
    phone.wait_for_url(live_server.url + reverse("accounts:autopay", args=[account.pk]))
    expect(phone.get_by_test_id("autopay-status").get_by_text("On")).to_be_visible()
    assert_page_is_clean(phone)
    enrollment = AutopayEnrollment.objects.get(account=account)
    assert enrollment.payment_method == method and enrollment.user.email == "guest@example.com"


def test_pay_from_the_dashboard_with_a_saved_card(live_server, phone, stripe_live, django_user_model):
    cache.clear()
    account = CustomerAccountFactory(biller=BillerFactory(), holder_name="Dana Example")
    make_bill(account, amounts=(4250,), due_in_days=9)
    user = django_user_model.objects.create_user(email="dana@example.com", password=PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    account_link_grant(user=user, account=account, via=AccountLink.Via.LOOKUP)
    save_card(user)

    phone.goto(live_server.url + reverse("account_login"))
    phone.get_by_label("Email").fill(user.email)
    phone.get_by_label("Password").fill(PASSWORD)
    phone.get_by_role("button", name="Sign In").click()
    phone.wait_for_url(re.compile(r".*/me/$"))
    phone.get_by_role("button", name="Pay now").click()
    phone.wait_for_url(live_server.url + reverse("billing:pay_account"))
    saved = phone.get_by_label("Visa ending 4242, expires 12/2034")
    expect(saved).to_be_checked()
    assert_page_is_clean(phone)
    phone.get_by_label("E-mail for your receipt").fill(user.email)
    phone.get_by_role("button", name="Pay $42.50").click()
    phone.wait_for_url(re.compile(r".*/pay/receipt/.*"), timeout=20_000)
    payment = Payment.objects.get()
    assert (payment.status, payment.channel, payment.amount) == ("succeeded", "portal", 4250)
    assert_page_is_clean(phone)
