"""allauth's pages render inside the portal's layout, with labelled fields and errors tied to them."""

import re

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

ANONYMOUS_PAGES = [
    "account_login",
    "account_signup",
    "account_request_login_code",
    "account_reset_password",
    "account_reset_password_done",
    "account_email_verification_sent",
]
SIGNED_IN_PAGES = [
    "account_logout",
    "account_change_password",
    "account_email",
    "account_reauthenticate",
    "mfa_index",
]


def assert_portal_page(html: str):
    assert 'class="skip-link"' in html  # our base.html, not allauth's bare layout
    assert "css/portal.css" in html
    assert "<strong>Menu:</strong>" not in html
    # Every visible input has a label pointing at it.
    for input_id in re.findall(r'<input(?![^>]*type="(?:hidden|submit)")[^>]*\bid="([^"]+)"', html):
        assert f'for="{input_id}"' in html, input_id


@pytest.mark.parametrize("name", ANONYMOUS_PAGES)
def test_sign_in_pages_use_the_portal_layout(client, biller, name):
    response = client.get(reverse(name))
    assert response.status_code == 200
    assert_portal_page(response.content.decode())


@pytest.mark.parametrize("name", SIGNED_IN_PAGES)
def test_account_pages_use_the_portal_layout(payer_client, biller, name):
    response = payer_client.get(reverse(name))
    assert response.status_code == 200
    html = response.content.decode()
    assert_portal_page(html)


def test_login_offers_an_emailed_code_and_a_password_reset(client, biller):
    html = client.get(reverse("account_login")).content.decode()
    assert reverse("account_request_login_code") in html
    assert reverse("account_reset_password") in html
    assert 'class="button button-primary"' in html


def test_a_failed_sign_in_shows_an_alert_and_keeps_labels(client, biller, payer):
    response = client.post(reverse("account_login"), {"login": payer.email, "password": "wrong"})
    html = response.content.decode()
    assert 'role="alert"' in html
    assert "not correct" in html


def test_field_errors_are_tied_to_their_inputs(client, biller):
    response = client.post(reverse("account_signup"), {"email": "not-an-address", "password1": "x", "password2": "y"})
    html = response.content.decode()
    assert 'id="id_email_error"' in html
    email_input = re.search(r'<input[^>]*name="email"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in email_input
    assert "id_email_error" in email_input


def test_mfa_pages_render_for_a_verified_payer(payer_client, biller):
    for name in ("mfa_index", "mfa_activate_totp"):
        response = payer_client.get(reverse(name))
        if response.status_code == 302:  # allauth asks to reauthenticate before security changes
            assert reverse("account_reauthenticate") in response["Location"]
            continue
        assert response.status_code == 200
        assert_portal_page(response.content.decode())
