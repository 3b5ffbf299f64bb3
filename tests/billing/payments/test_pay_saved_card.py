"""Paying from the dashboard: a signed-in payer who linked the account is offered the cards they saved, and pays with
one through the same start/confirm services as a guest. Against a real localstripe."""

import pytest
from django.urls import reverse

from accounts.models import AccountLink
from accounts.services import account_link_grant
from billing.models import Payment
from tests import stripe_support
from tests.billing.cards_support import save_card
from tests.billing.payments.test_pay_flow import card_token, confirm, grant, start
from tests.factories import make_bill


@pytest.fixture
def signed_in(client, django_user_model, account):
    user = django_user_model.objects.create_user(email="dana@example.com", password="pw-Dana-12345")
    account_link_grant(user=user, account=account, via=AccountLink.Via.LOOKUP)
    client.force_login(user)
    return grant(client, account), user


def test_a_linked_payer_pays_with_a_saved_card(stripe_settings, localstripe, signed_in, account):
    client, user = signed_in
    bill = make_bill(account, amounts=(4200,))
    card = save_card(user)
    page = client.get(reverse("billing:pay_account")).content.decode()
    assert f'name="saved_card" value="{card.pk}"' in page and "Visa" in page

    status, started = start(client)
    assert status == 200
    response = client.post(reverse("billing:pay_confirm"), {"payment_intent": started["paymentIntent"], "saved_card": card.pk})
    assert response.status_code == 200 and response.json()["status"] == "succeeded"

    payment = Payment.objects.get()
    assert (payment.status, payment.channel, payment.total_charged) == ("succeeded", "portal", 4200)
    bill.refresh_from_db()
    assert bill.status == "paid"
    intents = [i for i in stripe_support.payment_intents(localstripe) if i["id"] == payment.gateway_payment_id]
    assert intents[0]["customer"] == card.gateway_customer_id


def test_a_guest_cannot_pay_with_someone_elses_saved_card(stripe_settings, localstripe, client, account, django_user_model):
    make_bill(account, amounts=(4200,))
    owner = django_user_model.objects.create_user(email="owner@example.com", password="pw-Owner-12345")
    theirs = save_card(owner)
    guest = grant(client, account)
    assert 'name="saved_card"' not in guest.get(reverse("billing:pay_account")).content.decode()
    status, started = start(guest)
    assert status == 200
    response = guest.post(reverse("billing:pay_confirm"), {"payment_intent": started["paymentIntent"], "saved_card": theirs.pk})
    assert response.status_code == 409
    payment = Payment.objects.get()
    assert payment.status == "pending" and payment.channel == "guest_web"
    assert not payment.attempts.filter(kind="confirm").exists()  # nothing was sent to the gateway


def test_a_new_card_still_works_for_a_signed_in_payer(stripe_settings, localstripe, signed_in, account):
    client, _user = signed_in
    make_bill(account, amounts=(1500,))
    status, started = start(client)
    status, answer = confirm(client, started["paymentIntent"], card_token(localstripe, "4242424242424242")["card"]["id"])
    assert answer["status"] == "succeeded"
    assert Payment.objects.get().channel == "portal"


def test_a_saved_card_does_not_pay_an_account_linked_without_proof(
    stripe_settings, localstripe, client, django_user_model, account
):
    """Issue 8, item 1: a login that got an account through a link that proved nothing (a forwarded receipt or
    invitation link, before the fix) cannot pay it with a saved card; the lookup makes the link trustworthy."""
    user = django_user_model.objects.create_user(email="dana@example.com", password="pw-Dana-12345")
    account_link_grant(user=user, account=account, via=AccountLink.Via.GUEST_RECEIPT)
    client.force_login(user)
    grant(client, account)
    make_bill(account, amounts=(4200,))
    card = save_card(user)
    assert 'name="saved_card"' not in client.get(reverse("billing:pay_account")).content.decode()
    status, started = start(client)
    assert status == 200
    response = client.post(reverse("billing:pay_confirm"), {"payment_intent": started["paymentIntent"], "saved_card": card.pk})
    assert response.status_code == 409
    payment = Payment.objects.get()
    assert payment.status == "pending" and not payment.attempts.filter(kind="confirm").exists()

    account_link_grant(user=user, account=account, via=AccountLink.Via.LOOKUP)
    response = client.post(reverse("billing:pay_confirm"), {"payment_intent": started["paymentIntent"], "saved_card": card.pk})
    assert response.status_code == 200 and response.json()["status"] == "succeeded"
