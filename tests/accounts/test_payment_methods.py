"""Saved cards pages: add through a SetupIntent, make default or backup, remove; every change needs a recent sign-in."""

import time

import pytest
from django.conf import settings
from django.urls import reverse

from billing.methods.services import payment_method_make_backup
from billing.models import PaymentMethod
from tests.accounts.conftest import PASSWORD
from tests.billing import conftest as billing_fixtures
from tests.billing.cards_support import confirm_setup_in_browser_stand_in, gateway_pm, save_card

pytestmark = pytest.mark.django_db

# Fixtures shared with other test modules.
localstripe = billing_fixtures.localstripe
stripe_settings = billing_fixtures.stripe_settings


def reauthenticate(client):
    response = client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    assert response.status_code == 302
    return client


def make_stale(client):
    """The sign-in is older than ACCOUNT_REAUTHENTICATION_TIMEOUT."""
    session = client.session
    records = session["account_authentication_methods"]
    for record in records:
        record["at"] = time.time() - settings.ACCOUNT_REAUTHENTICATION_TIMEOUT - 1
    session["account_authentication_methods"] = records
    session.save()


@pytest.fixture
def fresh_client(payer_client):
    return reauthenticate(payer_client)


def add_card_through_pages(client, number="4242424242424242", **extra):
    setup = client.post(reverse("accounts:payment_method_setup"))
    assert setup.status_code == 200, setup
    setup_id = confirm_setup_in_browser_stand_in(setup.json()["clientSecret"], number)
    return client.post(reverse("accounts:payment_method_save"), {"setup_intent": setup_id, **extra})


def test_the_add_card_page_mounts_the_card_element_with_the_stripe_js_setting(stripe_settings, fresh_client):
    html = fresh_client.get(reverse("accounts:payment_method_add")).content.decode()
    assert 'id="card-element"' in html
    assert f'src="{settings.STRIPE_JS_URL}"' in html
    assert "js/cards.js" in html
    assert "card-config" in html


def test_a_stale_session_reauthenticates_before_adding_a_card(stripe_settings, fresh_client):
    make_stale(fresh_client)
    for url in (reverse("accounts:payment_method_add"),):
        response = fresh_client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("account_reauthenticate"))
    response = fresh_client.post(reverse("accounts:payment_method_setup"))
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    assert not PaymentMethod.objects.exists()

    # After the password, allauth replays the suspended request.
    replay = fresh_client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    assert replay.status_code == 302
    assert fresh_client.get(reverse("accounts:payment_method_add")).status_code == 200


def test_a_signed_in_session_without_a_recent_password_is_asked_too(stripe_settings, payer_client):
    """force_login is a sign-in with no authentication record: like a session restored from a cookie."""
    response = payer_client.get(reverse("accounts:payment_method_add"))
    assert response["Location"].startswith(reverse("account_reauthenticate"))


def test_add_a_card_then_list_it(stripe_settings, fresh_client, payer):
    response = add_card_through_pages(fresh_client)
    assert response.status_code == 302 and response["Location"] == reverse("accounts:payment_methods")
    method = PaymentMethod.objects.get(user=payer)
    assert gateway_pm(method)["customer"] == payer.gateway_customer.gateway_customer_id
    html = fresh_client.get(reverse("accounts:payment_methods")).content.decode()
    assert "Visa ending 4242, expires 12/2034" in html
    assert "Default" in html


def test_adding_a_card_from_the_autopay_form_goes_back_with_it_chosen(stripe_settings, fresh_client, payer, account):
    from tests.accounts.test_dashboard import linked

    linked(payer, account)
    response = add_card_through_pages(fresh_client, for_account=account.pk)
    method = PaymentMethod.objects.get(user=payer)
    assert response["Location"] == f"{reverse('accounts:autopay', args=[account.pk])}?card={method.pk}"


def test_a_setup_intent_id_typed_by_hand_saves_nothing(stripe_settings, fresh_client):
    response = fresh_client.post(reverse("accounts:payment_method_save"), {"setup_intent": "seti_forged"})
    assert response.status_code == 302 and response["Location"] == reverse("accounts:payment_method_add")
    assert not PaymentMethod.objects.exists()


def test_default_backup_and_remove_through_the_pages(stripe_settings, fresh_client, payer):
    first, second = save_card(payer), save_card(payer, "5555555555554444")
    fresh_client.post(reverse("accounts:payment_method_backup", args=[second.pk]))
    second.refresh_from_db()
    assert second.is_backup
    fresh_client.post(reverse("accounts:payment_method_default", args=[second.pk]))
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.is_default and first.is_backup
    fresh_client.post(reverse("accounts:payment_method_remove", args=[first.pk]))
    first.refresh_from_db()
    assert first.removed_at is not None and gateway_pm(first)["customer"] is None


def test_changing_cards_needs_a_recent_sign_in(stripe_settings, fresh_client, payer):
    first, second = save_card(payer), save_card(payer, "5555555555554444")
    make_stale(fresh_client)
    for name, method in (("payment_method_default", second), ("payment_method_backup", second),
                         ("payment_method_remove", first)):  # fmt: skip
        response = fresh_client.post(reverse(f"accounts:{name}", args=[method.pk]))
        assert response["Location"].startswith(reverse("account_reauthenticate")), name
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.is_default, first.removed_at, second.is_backup) == (True, None, False)


def test_someone_elses_card_is_404(stripe_settings, fresh_client, make_payer):
    theirs = save_card(make_payer("other@example.com"))
    for name in ("payment_method_default", "payment_method_backup", "payment_method_remove"):
        assert fresh_client.post(reverse(f"accounts:{name}", args=[theirs.pk])).status_code == 404
    assert "4242" not in fresh_client.get(reverse("accounts:payment_methods")).content.decode()


def test_a_stale_session_reauthenticates_before_changing_the_login_email(fresh_client, payer):
    make_stale(fresh_client)
    response = fresh_client.post(reverse("account_email"), {"action_add": "", "email": "new@example.com"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_reauthenticate"))
    assert not payer.emailaddress_set.filter(email="new@example.com").exists()


def test_a_payer_can_go_back_to_no_backup_card(stripe_settings, fresh_client, payer):
    first, second = save_card(payer), save_card(payer)
    payment_method_make_backup(user=payer, payment_method=second)
    assert reverse("accounts:payment_method_no_backup") in fresh_client.get(reverse("accounts:payment_methods")).content.decode()
    response = fresh_client.post(reverse("accounts:payment_method_no_backup"))
    assert response.status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.is_default and not second.is_backup


def test_going_back_to_no_backup_needs_a_recent_sign_in(stripe_settings, fresh_client, payer):
    card = save_card(payer)
    backup = save_card(payer)
    payment_method_make_backup(user=payer, payment_method=backup)
    make_stale(fresh_client)
    response = fresh_client.post(reverse("accounts:payment_method_no_backup"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_reauthenticate"))
    backup.refresh_from_db()
    assert backup.is_backup and card.pk != backup.pk
