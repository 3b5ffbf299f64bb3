import re

from django.test import override_settings
from django.urls import reverse


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in (part.strip() for part in header.split(";")) if d}


def test_payer_pages_carry_a_strict_policy(client, biller):
    response = client.get(reverse("billing:home"))
    policy = _policy(response)
    assert policy["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
    assert "'unsafe-inline'" not in policy["style-src"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    # The only inline block (the brand colour) carries this response's nonce.
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
    assert f'<style nonce="{nonce}">' in response.content.decode()


def test_nonce_changes_per_response(client, biller):
    first = client.get(reverse("billing:home"))["Content-Security-Policy"]
    second = client.get(reverse("billing:home"))["Content-Security-Policy"]
    assert re.search(r"'nonce-[^']+'", first).group(0) != re.search(r"'nonce-[^']+'", second).group(0)


def test_only_our_origin_and_stripes_are_allowed(client, biller, settings):
    policy = _policy(client.get(reverse("billing:home")))
    allowed = {src for srcs in policy.values() for src in srcs if "://" in src}
    assert allowed == set(settings.STRIPE_ORIGINS)
    assert all("stripe" in origin or "127.0.0.1" in origin or "localhost" in origin for origin in allowed)


@override_settings()
def test_staff_admin_is_not_under_the_payer_policy(admin_client):
    response = admin_client.get("/admin/")
    assert "Content-Security-Policy" not in response


def test_printable_bill_style_carries_the_nonce(admin_client, account):
    from tests.factories import make_bill

    bill = make_bill(account)
    response = admin_client.get(reverse("billing:staff_bill_print", args=[bill.pk]))
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
    assert f'<style nonce="{nonce}">' in response.content.decode()
