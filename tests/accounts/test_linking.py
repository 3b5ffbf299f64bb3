"""Linking customer accounts to a login: the guest lookup's check and limits, one message for every miss."""

import re

import pytest
from django.contrib.admin.sites import site as admin_site
from django.core import mail
from django.urls import reverse
from django.utils.html import escape

from accounts import services
from accounts.models import AccountLink
from billing.errors import ApplicationError
from billing.payments import lookup
from tests.factories import CustomerAccountFactory

pytestmark = pytest.mark.django_db

MISS = "We couldn't find an account with those details. Check your bill and try again."


def link_form(account, postal_code=None):
    return {"account_number": account.account_number, "postal_code": postal_code or account.postal_code}


def test_link_an_account_with_the_details_on_its_bill(payer_client, payer, account):
    response = payer_client.post(reverse("accounts:link"), link_form(account))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:dashboard")
    link = AccountLink.objects.get()
    assert (link.user, link.customer_account, link.created_via) == (payer, account, AccountLink.Via.LOOKUP)
    dashboard = payer_client.get(response["Location"]).content.decode()
    assert f"Account {account.account_number}" in dashboard
    assert "is now linked" in dashboard


def test_linking_twice_keeps_one_link(payer_client, account):
    payer_client.post(reverse("accounts:link"), link_form(account))
    response = payer_client.post(reverse("accounts:link"), link_form(account), follow=True)
    assert AccountLink.objects.count() == 1
    assert "already linked" in response.content.decode()


def test_a_wrong_factor_reads_exactly_like_an_unknown_account(payer_client, account):
    wrong_factor = payer_client.post(reverse("accounts:link"), link_form(account, postal_code="00000"))
    unknown = payer_client.post(
        reverse("accounts:link"), {"account_number": "NO-SUCH-1", "postal_code": account.postal_code}
    )
    assert wrong_factor.status_code == unknown.status_code == 200
    assert escape(MISS) in wrong_factor.content.decode()

    def main(response):
        html = response.content.decode()
        html = html[html.index("<main") : html.index("</main>")]
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)

    # Not even the typed number is echoed back, so the two pages are the same (bar the CSRF token).
    assert main(wrong_factor) == main(unknown)
    assert not AccountLink.objects.exists()


def test_other_accounts_are_not_linked_by_someone_elses_details(make_payer, account):
    other = make_payer("other@example.com")
    services.account_link(
        user=other,
        account_number=account.account_number,
        factor=lookup.LookupFactor(postal_code=account.postal_code),
        ip="10.0.0.2",
    )
    me = make_payer("me@example.com")
    with pytest.raises(ApplicationError) as error:
        services.account_link(
            user=me,
            account_number=account.account_number,
            factor=lookup.LookupFactor(postal_code="99999"),
            ip="10.0.0.3",
        )
    assert error.value.message == MISS
    assert list(AccountLink.objects.values_list("user__email", flat=True)) == ["other@example.com"]


def test_one_account_many_logins_and_one_login_many_accounts(make_payer, biller):
    first, second = CustomerAccountFactory(biller=biller), CustomerAccountFactory(biller=biller)
    alice, bob = make_payer("alice@example.com"), make_payer("bob@example.com")
    for user in (alice, bob):
        for account in (first, second):
            services.account_link(
                user=user,
                account_number=account.account_number,
                factor=lookup.LookupFactor(postal_code=account.postal_code),
                ip="10.0.0.1",
            )
    assert AccountLink.objects.count() == 4


def test_failures_on_one_account_number_lock_it(payer_client, account):
    for _ in range(lookup.ACCOUNT_FAILURE_LIMIT):
        response = payer_client.post(reverse("accounts:link"), link_form(account, postal_code="00000"))
        assert response.status_code == 200
    # Even the right details are refused now: nothing is tried while the number is locked.
    locked = payer_client.post(reverse("accounts:link"), link_form(account))
    assert locked.status_code == 429
    assert "Too many attempts" in locked.content.decode()
    assert not AccountLink.objects.exists()


def test_attempts_from_one_address_are_limited_across_account_numbers(payer_client, biller):
    accounts = [CustomerAccountFactory(biller=biller) for _ in range(lookup.IP_FAILURE_LIMIT + 1)]
    for account in accounts[:-1]:
        payer_client.post(reverse("accounts:link"), link_form(account, postal_code="00000"))
    locked = payer_client.post(reverse("accounts:link"), link_form(accounts[-1]))
    assert locked.status_code == 429
    assert not AccountLink.objects.exists()


def test_linking_and_the_guest_lookup_share_their_limits(payer_client, client, account):
    for _ in range(lookup.ACCOUNT_FAILURE_LIMIT):
        client.post(reverse("billing:pay"), link_form(account, postal_code="00000"), REMOTE_ADDR="10.9.9.9")
    assert payer_client.post(reverse("accounts:link"), link_form(account)).status_code == 429


def test_unlink_asks_first_then_removes_only_the_link(payer_client, payer, account):
    services.account_link_grant(user=payer, account=account, via=AccountLink.Via.LOOKUP)
    url = reverse("accounts:unlink", args=[account.pk])
    confirm = payer_client.get(url)
    assert confirm.status_code == 200
    assert AccountLink.objects.exists()  # a GET changes nothing
    assert f"Unlink account {account.account_number}?" in confirm.content.decode()

    response = payer_client.post(url)
    assert response.status_code == 302
    assert not AccountLink.objects.exists()
    account.refresh_from_db()  # the customer account itself stays


def test_nobody_unlinks_someone_elses_link(payer_client, payer, make_payer, account):
    other = make_payer("other@example.com")
    link, _ = services.account_link_grant(user=other, account=account, via=AccountLink.Via.INVITATION)
    assert payer_client.post(reverse("accounts:unlink", args=[account.pk])).status_code == 404
    with pytest.raises(ApplicationError):
        services.account_unlink(user=payer, link=link)
    assert AccountLink.objects.filter(pk=link.pk).exists()


def test_linking_needs_a_verified_login(client, make_payer, account):
    assert client.get(reverse("accounts:link")).status_code == 302
    client.force_login(make_payer("unverified@example.com", verified=False))
    response = client.post(reverse("accounts:link"), link_form(account))
    assert not AccountLink.objects.exists()
    assert response.status_code == 200
    assert "Verify Your Email Address" in response.content.decode()
    assert mail.outbox[-1].to == ["unverified@example.com"]  # a fresh verification link is sent


def test_staff_see_and_remove_links_in_the_admin(admin_client, payer, account):
    link, _ = services.account_link_grant(user=payer, account=account, via=AccountLink.Via.LOOKUP)
    assert AccountLink in admin_site._registry
    listing = admin_client.get(reverse("admin:accounts_accountlink_changelist"))
    assert listing.status_code == 200
    assert account.account_number in listing.content.decode()
    user_page = admin_client.get(reverse("admin:accounts_user_change", args=[payer.pk]))
    assert account.account_number in user_page.content.decode()  # the inline

    response = admin_client.post(reverse("admin:accounts_accountlink_delete", args=[link.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not AccountLink.objects.exists()
