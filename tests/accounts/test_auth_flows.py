"""Payer sign-in with django-allauth, through the portal's pages: e-mails land in Django's locmem outbox."""

import re
import time

import pytest
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.core import mail
from django.urls import reverse

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db


def link_in(message) -> str:
    return re.search(r"https?://[^/\s]+(/\S+)", message.body).group(1)


def code_in(message) -> str:
    # allauth's sign-in code, on a line of its own, like "SGTX-KQKH"
    return re.search(r"^\s*([A-Z0-9]{4}-[A-Z0-9]{4})\s*$", message.body, re.MULTILINE).group(1)


def test_signup_verify_by_the_emailed_link_then_see_my_accounts(client, biller, django_user_model):
    response = client.post(
        reverse("account_signup"), {"email": "new@example.com", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    assert django_user_model.objects.filter(email="new@example.com").exists()
    # Not signed in until the address is verified (mandatory verification).
    assert client.get(reverse("accounts:dashboard")).status_code == 302

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new@example.com"]
    assert mail.outbox[0].body.startswith(f"Hello from {biller.name}!")  # the biller's name, not the host's
    confirm_url = link_in(mail.outbox[0])
    page = client.get(confirm_url)
    assert page.status_code == 200
    assert 'class="skip-link"' in page.content.decode()
    client.post(confirm_url)

    user = django_user_model.objects.get(email="new@example.com")
    assert user.emailaddress_set.get().verified
    client.post(reverse("account_login"), {"login": "new@example.com", "password": PASSWORD})
    dashboard = client.get(reverse("accounts:dashboard"))
    assert dashboard.status_code == 200
    assert "No accounts linked yet" in dashboard.content.decode()


def test_sign_in_with_an_emailed_code(client, biller, payer):
    response = client.post(reverse("account_request_login_code"), {"email": payer.email})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_confirm_login_code"))
    assert len(mail.outbox) == 1
    code = code_in(mail.outbox[0])

    page = client.get(response["Location"])
    assert 'class="skip-link"' in page.content.decode()
    client.post(reverse("account_confirm_login_code"), {"code": code})
    assert client.get(reverse("accounts:dashboard")).status_code == 200


def test_a_wrong_sign_in_code_does_not_sign_in(client, biller, payer):
    client.post(reverse("account_request_login_code"), {"email": payer.email})
    response = client.post(reverse("account_confirm_login_code"), {"code": "WRONG1"})
    assert response.status_code == 200
    assert 'aria-invalid="true"' in response.content.decode()
    assert client.get(reverse("accounts:dashboard")).status_code == 302


def test_password_reset_by_emailed_link(client, biller, payer):
    response = client.post(reverse("account_reset_password"), {"email": payer.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    reset_url = link_in(mail.outbox[0])
    form_page = client.get(reset_url, follow=True)
    assert form_page.status_code == 200
    assert 'class="skip-link"' in form_page.content.decode()
    new_password = "Another-Passw0rd!"
    set_password_url = form_page.redirect_chain[-1][0]  # allauth moves the key from the URL into the session
    assert set_password_url.endswith("-set-password/")
    done = client.post(set_password_url, {"password1": new_password, "password2": new_password})
    assert done.status_code == 302
    payer.refresh_from_db()
    assert payer.check_password(new_password)


def test_password_reset_for_an_unknown_address_looks_the_same(client, biller, payer):
    known = client.post(reverse("account_reset_password"), {"email": payer.email}, follow=True)
    unknown = client.post(reverse("account_reset_password"), {"email": "nobody@example.com"}, follow=True)
    assert known.redirect_chain == unknown.redirect_chain
    assert known.status_code == unknown.status_code == 200

    def main(response):
        html = response.content.decode()
        return html[html.index("<main") : html.index("</main>")]

    assert main(known) == main(unknown)
    # allauth's enumeration prevention: the unknown address gets an "is there an account?" note, not a reset link.
    assert [m.to for m in mail.outbox] == [[payer.email], ["nobody@example.com"]]
    assert "/password/reset/key/" in mail.outbox[0].body
    assert "/password/reset/key/" not in mail.outbox[1].body


def current_totp(secret: str) -> str:
    """What an authenticator app shows now (RFC 6238), computed with allauth's own HOTP helper."""
    counter = int(time.time()) // mfa_settings.TOTP_PERIOD
    return format_hotp_value(hotp_value(secret, counter))


def test_totp_activation_and_then_a_second_step_at_sign_in(client, biller, payer):
    client.post(reverse("account_login"), {"login": payer.email, "password": PASSWORD})
    # Security changes ask for the password again first (ACCOUNT_REAUTHENTICATION_TIMEOUT), on our layout too.
    asked = client.get(reverse("mfa_activate_totp"))
    assert asked["Location"].startswith(reverse("account_reauthenticate"))
    assert 'class="skip-link"' in client.get(asked["Location"]).content.decode()
    client.post(asked["Location"], {"password": PASSWORD})
    page = client.get(reverse("mfa_activate_totp"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="skip-link"' in html
    secret_input = re.search(r'<input[^>]*id="authenticator_secret"[^>]*>', html).group(0)
    secret = re.search(r'value="([A-Z2-7=]+)"', secret_input).group(1)

    response = client.post(reverse("mfa_activate_totp"), {"code": current_totp(secret)})
    assert response.status_code == 302
    assert Authenticator.objects.filter(user=payer, type=Authenticator.Type.TOTP).exists()
    assert client.get(reverse("mfa_index")).status_code == 200
    codes = client.get(reverse("mfa_view_recovery_codes"))
    assert codes.status_code == 200
    assert 'for="recovery_codes"' in codes.content.decode()

    client.post(reverse("account_logout"))
    response = client.post(reverse("account_login"), {"login": payer.email, "password": PASSWORD})
    assert response["Location"] == reverse("mfa_authenticate")
    assert client.get(reverse("accounts:dashboard")).status_code == 302
    challenge = client.get(reverse("mfa_authenticate"))
    assert 'class="skip-link"' in challenge.content.decode()
    client.post(reverse("mfa_authenticate"), {"code": current_totp(secret)})
    assert client.get(reverse("accounts:dashboard")).status_code == 200
