"""Paperless: one tick on the account page, the same to go back to paper; the staff export of paper-bill accounts;
and the links e-mailed to a guest who asked for paperless or autopay on a payment."""

import csv
import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

from billing.enrolment.guest import guest_enrollment_links_send, guest_enrollment_record
from billing.enrolment.paperless import paperless_consent_text, paperless_enroll
from billing.models import AutopayEnrollment, PaperlessEnrollment, PaymentMethod
from tests.accounts import test_payment_methods as card_pages
from tests.accounts.test_dashboard import linked
from tests.billing import conftest as billing_fixtures
from tests.billing.cards_support import guest_card_payment, link_token
from tests.factories import CustomerAccountFactory, make_bill

pytestmark = pytest.mark.django_db

# Fixtures shared with other test modules.
localstripe = billing_fixtures.localstripe
stripe_settings = billing_fixtures.stripe_settings
fresh_client = card_pages.fresh_client
make_stale = card_pages.make_stale


def test_one_tick_on_and_the_same_form_off(fresh_client, payer, account):
    linked(payer, account)
    page = fresh_client.get(reverse("accounts:account", args=[account.pk])).content.decode()
    consent = paperless_consent_text(account=account)
    assert consent in page and 'id="paperless"' in page

    url = reverse("accounts:paperless", args=[account.pk])
    assert fresh_client.post(url, {"paperless": "on", "email": "bills@example.com"}).status_code == 302
    enrollment = PaperlessEnrollment.objects.get(account=account)
    assert (enrollment.email, enrollment.via, enrollment.user, enrollment.ip) == (
        "bills@example.com", "portal", payer, "127.0.0.1",
    )  # fmt: skip
    assert enrollment.consent_text == consent
    page = fresh_client.get(reverse("accounts:account", args=[account.pk])).content.decode()
    assert "E-mail to bills@example.com" in page

    fresh_client.post(url, {"email": "bills@example.com"})  # unticked
    enrollment.refresh_from_db()
    assert enrollment.cancelled_at is not None and enrollment.cancelled_by == payer


def test_the_bills_address_needs_a_recent_sign_in(fresh_client, payer, account):
    linked(payer, account)
    make_stale(fresh_client)
    response = fresh_client.post(
        reverse("accounts:paperless", args=[account.pk]), {"paperless": "on", "email": "attacker@example.com"}
    )
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    assert not PaperlessEnrollment.objects.exists()


def test_paperless_without_an_address_is_refused(fresh_client, payer, account):
    linked(payer, account)
    fresh_client.post(reverse("accounts:paperless", args=[account.pk]), {"paperless": "on", "email": ""})
    assert not PaperlessEnrollment.objects.exists()


def test_someone_elses_account_is_404(fresh_client, account):
    response = fresh_client.post(
        reverse("accounts:paperless", args=[account.pk]), {"paperless": "on", "email": "a@b.c"}
    )
    assert response.status_code == 404


# --- Staff export --------------------------------------------------------------------------------------------------


def test_staff_export_of_accounts_that_still_need_paper_bills(admin_client, biller):
    paper = CustomerAccountFactory(biller=biller, holder_name='=HYPERLINK("x")', address_line1="1 River Rd")
    make_bill(paper)
    emailed = CustomerAccountFactory(biller=biller)
    make_bill(emailed)
    paperless_enroll(
        account=emailed, email="e@example.com", consent_text="x", ip=None, via=PaperlessEnrollment.Via.PORTAL
    )
    CustomerAccountFactory(biller=biller)  # nothing open: no bill to send

    response = admin_client.get(reverse("admin:billing_paper_bills_export"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["Account number", "Account holder", "Service address"]
    assert [r[0] for r in rows[1:]] == [paper.account_number]
    assert rows[1][1] == '\'=HYPERLINK("x")'  # never a live formula in a spreadsheet

    changelist = admin_client.get(reverse("admin:billing_paperlessenrollment_changelist")).content.decode()
    assert reverse("admin:billing_paper_bills_export") in changelist

    action = admin_client.post(
        reverse("admin:billing_customeraccount_changelist"),
        {"action": "paper_bills_export_action", "_selected_action": [paper.pk, emailed.pk]},
    )
    assert [r[0] for r in list(csv.reader(io.StringIO(action.content.decode())))[1:]] == [paper.account_number]


def test_the_export_needs_staff(client, biller):
    response = client.get(reverse("admin:billing_paper_bills_export"))
    assert response.status_code == 302 and "login" in response["Location"]


# --- A guest's e-mailed links -------------------------------------------------------------------------------------


def test_guest_paperless_link_shows_the_consent_then_one_button_enrols(client, account, mailoutbox):
    from django.utils import timezone

    from billing.models import Payment
    from billing.payments.core import confirmation_number_new

    payment = Payment.objects.create(
        biller=account.biller, account=account, confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.GUEST_WEB, method=Payment.Method.CARD, status=Payment.Status.SUCCEEDED,
        currency="USD", amount=5000, payer_email="guest@example.com", received_at=timezone.now(),
    )  # fmt: skip
    request = guest_enrollment_record(payment=payment, email="guest@example.com", paperless=True)
    guest_enrollment_links_send(enrollment_request_id=request.pk)
    url = reverse("accounts:guest_paperless", args=[link_token(mail.outbox[0].body, "paperless")])

    page = client.get(url)
    assert paperless_consent_text(account=account) in page.content.decode()
    assert not PaperlessEnrollment.objects.exists()  # opening the link (a mail scanner does) changes nothing
    done = client.post(url)
    assert done.status_code == 200 and "guest@example.com" in done.content.decode()
    assert PaperlessEnrollment.objects.get().via == "guest_receipt"
    assert client.post(url).status_code == 410
    assert client.get(url).status_code == 410


def guest_autopay_url(account) -> str:
    payment = guest_card_payment(account)
    request = guest_enrollment_record(payment=payment, email="guest@example.com", autopay=True)
    guest_enrollment_links_send(enrollment_request_id=request.pk)
    return reverse("accounts:guest_autopay", args=[link_token(mail.outbox[-1].body, "autopay")])


def code_from_outbox() -> str:
    message = mail.outbox[-1]
    assert message.to == ["guest@example.com"]  # only ever the address the link went to
    return re.search(r"Your code is (\d{6})\.", message.body).group(1)


def test_guest_autopay_asks_for_a_code_sent_to_the_guest_then_makes_the_login_and_opens_the_autopay_form(
    stripe_settings, client, account, mailoutbox
):
    url = guest_autopay_url(account)
    page = client.get(url).content.decode()
    assert "guest@example.com" in page and "E-mail me a code" in page
    assert client.post(url, {"action": "send"}).status_code == 302
    page = client.get(url).content.decode()
    assert "Code from the e-mail" in page and "Create my login and save the card" in page

    response = client.post(url, {"action": "finish", "code": code_from_outbox(), "password": ""})
    user = get_user_model().objects.get(email="guest@example.com")
    method = PaymentMethod.objects.get(user=user)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('accounts:autopay', args=[account.pk])}?card={method.pk}"
    assert user.account_links.get().created_via == "guest_code"

    form = client.get(response["Location"])  # signed in by the code just now: no password asked again
    assert form.status_code == 200
    assert f'value="{method.pk}"' in form.content.decode()
    enrol = client.post(
        reverse("accounts:autopay", args=[account.pk]),
        {"payment_method": method.pk, "charge_rule": "on_due_date", "consent": "on"},
    )
    assert enrol.status_code == 302
    assert AutopayEnrollment.objects.get(account=account).payment_method == method
    assert client.get(url).status_code == 410  # the link was used


def test_a_forwarded_guest_autopay_link_alone_makes_no_login_and_saves_no_card(
    stripe_settings, client, account, mailoutbox
):
    """Issue 8, item 1: whoever holds the link (forwarded, leaked) used to get a verified login under the guest's
    address with the guest's card on it."""
    url = guest_autopay_url(account)
    for data in ({"password": ""}, {"password": "A-new-Passw0rd!"}, {"action": "finish", "code": "000000"}):
        client.post(url, data)
    assert not get_user_model().objects.filter(email="guest@example.com").exists()
    assert not PaymentMethod.objects.exists()
    assert "_auth_user_id" not in client.session


def test_guest_autopay_with_a_password_and_a_weak_one_refused(stripe_settings, client, account, mailoutbox):
    url = guest_autopay_url(account)
    client.post(url, {"action": "send"})
    code = code_from_outbox()
    assert client.post(url, {"action": "finish", "code": code, "password": "123"}).status_code == 400
    assert not get_user_model().objects.filter(email="guest@example.com").exists()
    assert client.post(url, {"action": "finish", "code": code, "password": "A-new-Passw0rd!"}).status_code == 302
    assert get_user_model().objects.get(email="guest@example.com").check_password("A-new-Passw0rd!")


def test_guest_autopay_for_an_existing_login_asks_to_sign_in_first(
    stripe_settings, client, account, mailoutbox, make_payer
):
    user = make_payer("guest@example.com")
    url = guest_autopay_url(account)
    page = client.get(url).content.decode()
    assert "Sign in to continue" in page
    client.post(url, {"password": "whatever-Passw0rd"})
    assert not PaymentMethod.objects.exists()  # nobody signs in by knowing only the link

    client.force_login(user)
    client.post(url, {"action": "finish"})
    assert not PaymentMethod.objects.exists()  # signed in, but the mailbox is proven only by the code
    client.post(url, {"action": "send"})
    assert client.post(url, {"action": "finish", "code": code_from_outbox()}).status_code == 302
    assert PaymentMethod.objects.get().user == user


def test_a_stranger_signed_in_with_a_forwarded_guest_autopay_link_gets_nothing(
    stripe_settings, client, account, mailoutbox, make_payer
):
    url = guest_autopay_url(account)
    client.force_login(make_payer("stranger@example.com"))
    page = client.get(url).content.decode()
    assert "You are signed in with another e-mail address" in page and "E-mail me a code" not in page
    sent = len(mail.outbox)
    client.post(url, {"action": "send"})
    client.post(url, {"action": "finish", "code": "000000"})
    assert len(mail.outbox) == sent and not PaymentMethod.objects.exists()
