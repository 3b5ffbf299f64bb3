"""Staff sign in to the admin through allauth: throttled, and never without a second factor (issue 8, item 4)."""

import re
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.core.management import CommandError, call_command
from django.urls import reverse

from tests.factories import make_bill
from tests.staff_support import totp_code

PASSWORD = "pw-Staff-Secret-123"
ADMIN = reverse("admin:index")


@pytest.fixture
def make_staff(db, django_user_model):
    def make(email="clerk@example.com", *, superuser=False):
        create = django_user_model.objects.create_superuser if superuser else django_user_model.objects.create_user
        user = create(email=email, password=PASSWORD, is_staff=True)
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        return user

    return make


def sign_in(client, email, password=PASSWORD, next_url=ADMIN):
    return client.post(f"{reverse('account_login')}?next={next_url}", {"login": email, "password": password})


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def enrol(user) -> str:
    out = StringIO()
    call_command("staff_mfa_enrol", "--email", user.email, stdout=out)
    return re.search(r"secret=([A-Z2-7]+)", out.getvalue()).group(1)


def test_the_admin_login_is_allauths(client, make_staff):
    staff = make_staff()
    response = client.get(reverse("admin:login"), {"next": ADMIN})
    assert response.status_code == 302
    assert urlsplit(response.url).path == reverse("account_login")
    assert parse_qs(urlsplit(response.url).query)["next"] == [ADMIN]
    # Django's own password form is gone: the right password posted to it signs nobody in.
    client.post(reverse("admin:login"), {"username": staff.email, "password": PASSWORD, "next": ADMIN})
    assert not signed_in(client)
    assert client.get(ADMIN).status_code == 302


def test_wrong_passwords_are_throttled_then_even_the_right_one_is_refused(client, make_staff):
    staff = make_staff()
    login_url = client.get(reverse("admin:login"), {"next": ADMIN}).url
    assert urlsplit(login_url).path == reverse("account_login")
    answers = [client.post(login_url, {"login": staff.email, "password": f"wrong-{i}"}) for i in range(30)]
    assert any(a.status_code == 429 or "Too many failed login attempts" in a.content.decode() for a in answers)
    response = client.post(login_url, {"login": staff.email, "password": PASSWORD})
    assert response.status_code == 429 or "Too many failed login attempts" in response.content.decode()
    assert not signed_in(client)
    assert client.get(ADMIN).status_code == 302


@pytest.mark.parametrize("superuser", [False, True])
def test_staff_without_an_authenticator_must_enrol_before_any_admin_page(client, make_staff, superuser):
    staff = make_staff(superuser=superuser)
    response = sign_in(client, staff.email)
    assert response.status_code == 302 and response.url == ADMIN
    assert signed_in(client)
    for url in (ADMIN, reverse("admin:billing_bill_changelist")):
        final = client.get(url, follow=True)
        # allauth asks for the password again before adding an authenticator, then shows the TOTP form.
        assert (reverse("mfa_activate_totp"), 302) in final.redirect_chain, final.redirect_chain
        assert final.request["PATH_INFO"] == reverse("account_reauthenticate")
    final = client.post(final.redirect_chain[-1][0], {"password": PASSWORD}, follow=True)
    assert final.request["PATH_INFO"] == reverse("mfa_activate_totp")
    assert b'name="code"' in final.content
    secret = client.session["mfa.totp.secret"]  # the one the page shows as a QR code
    client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert Authenticator.objects.filter(user=staff, type=Authenticator.Type.TOTP).exists()
    # Enrolled: the admin asks for a current code once, then opens.
    final = client.get(ADMIN, follow=True)
    assert final.request["PATH_INFO"] == reverse("mfa_reauthenticate")
    client.post(final.redirect_chain[-1][0], {"code": totp_code(secret)})
    assert client.get(ADMIN).status_code == 200


def test_staff_with_totp_enter_a_code_at_sign_in_then_the_admin_opens(client, make_staff):
    staff = make_staff(superuser=True)
    secret = enrol(staff)
    response = sign_in(client, staff.email)
    assert response.url.startswith(reverse("mfa_authenticate"))
    assert not signed_in(client)  # the password alone is not a sign-in
    assert client.get(ADMIN).status_code == 302
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert response.status_code == 302 and response.url == ADMIN
    assert client.get(ADMIN).status_code == 200


def test_a_staff_session_that_skipped_the_second_factor_opens_nothing(client, make_staff, account):
    staff = make_staff(superuser=True)
    secret = enrol(staff)
    client.force_login(staff)  # signed in, but no second factor in this session
    bill = make_bill(account)
    for url in (ADMIN, reverse("admin:billing_payment_changelist"), reverse("billing:staff_bill_pdf", args=[bill.pk])):
        response = client.get(url, follow=True)
        assert response.request["PATH_INFO"] == reverse("mfa_reauthenticate"), (url, response.redirect_chain)
    next_url = parse_qs(urlsplit(response.redirect_chain[-1][0]).query)["next"][0]
    response = client.post(f"{reverse('mfa_reauthenticate')}?next={next_url}", {"code": totp_code(secret)})
    assert response.status_code == 302
    assert client.get(ADMIN).status_code == 200


def test_payers_are_not_asked_for_a_second_factor(client, make_payer):
    make_payer("payer@example.com")
    response = client.post(reverse("account_login"), {"login": "payer@example.com", "password": "A-payer-Passw0rd!"})
    assert response.status_code == 302 and response.url == reverse("accounts:dashboard")
    assert client.get(reverse("accounts:dashboard")).status_code == 200


def test_staff_sessions_expire_sooner_than_payers(client, make_staff, make_payer, settings):
    settings.STAFF_SESSION_COOKIE_AGE = 4 * 60 * 60
    assert settings.STAFF_SESSION_COOKIE_AGE < settings.SESSION_COOKIE_AGE
    staff = make_staff()
    secret = enrol(staff)
    login = {"login": staff.email, "password": PASSWORD, "remember": "on"}
    client.post(f"{reverse('account_login')}?next={ADMIN}", login)
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert response.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == 4 * 60 * 60
    assert client.session.get_expiry_age() == 4 * 60 * 60
    assert client.get(ADMIN).status_code == 200
    # A session that outlived the cap (e.g. "remember me" set after a password-only sign-in) is cut back.
    session = client.session
    session.set_expiry(settings.SESSION_COOKIE_AGE)
    session.save()
    assert client.get(ADMIN).status_code == 200
    assert client.session.get_expiry_age() == 4 * 60 * 60

    payer_client = type(client)()
    make_payer("payer@example.com")
    response = payer_client.post(
        reverse("account_login"), {"login": "payer@example.com", "password": "A-payer-Passw0rd!", "remember": "on"}
    )
    assert response.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == settings.SESSION_COOKIE_AGE
    assert payer_client.session.get_expiry_age() == settings.SESSION_COOKIE_AGE


# --- manage.py staff_mfa_enrol ---------------------------------------------------------------------------------------


def test_the_command_enrols_the_first_superuser_and_prints_everything_once(client, make_staff):
    make_staff("clerk@example.com")
    root = make_staff("root@example.com", superuser=True)
    make_staff("second-root@example.com", superuser=True)
    out = StringIO()
    call_command("staff_mfa_enrol", stdout=out)
    printed = out.getvalue()
    assert "root@example.com" in printed and "second-root" not in printed
    uri = re.search(r"otpauth://totp/\S+", printed).group(0)
    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    assert secret in printed.replace(uri, "")  # also printed on its own, for typing into an app
    codes = re.findall(r"^\s*(\d{8})\s*$", printed, re.M)
    assert len(codes) == 10
    assert Authenticator.objects.filter(user=root).count() == 2  # TOTP and recovery codes

    # The printed secret really signs in, and so does a recovery code.
    sign_in(client, root.email)
    client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert client.get(ADMIN).status_code == 200
    other = type(client)()
    sign_in(other, root.email)
    other.post(reverse("mfa_authenticate"), {"code": codes[0]})
    assert other.get(ADMIN).status_code == 200


def test_the_command_refuses_to_replace_an_authenticator_without_reset(make_staff):
    root = make_staff("root@example.com", superuser=True)
    first = enrol(root)
    with pytest.raises(CommandError, match="--reset"):
        call_command("staff_mfa_enrol", stdout=StringIO())
    out = StringIO()
    call_command("staff_mfa_enrol", "--reset", stdout=out)
    second = re.search(r"secret=([A-Z2-7]+)", out.getvalue()).group(1)
    assert second != first
    assert Authenticator.objects.filter(user=root, type=Authenticator.Type.TOTP).count() == 1


def test_the_command_refuses_a_payer_and_a_missing_superuser(make_staff, make_payer):
    with pytest.raises(CommandError, match="superuser"):
        call_command("staff_mfa_enrol", stdout=StringIO())
    make_payer("payer@example.com")
    with pytest.raises(CommandError, match="staff"):
        call_command("staff_mfa_enrol", "--email", "payer@example.com", stdout=StringIO())
    assert not Authenticator.objects.exists()


def test_the_command_marks_the_staff_address_verified(db, django_user_model):
    root = django_user_model.objects.create_superuser(email="root@example.com", password=PASSWORD)
    call_command("staff_mfa_enrol", stdout=StringIO())
    assert EmailAddress.objects.get(user=root).verified  # allauth would otherwise hold the sign-in for a mail
