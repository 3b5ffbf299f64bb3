"""Enrolment invitations: staff send them from the admin, a worker mails them, payers open the link and enrol.

The worker is the Celery task called in-process (it is a plain function underneath); e-mail is Django's locmem
outbox, or FakeRefusingEmailBackend below where a recipient must bounce.
"""

import datetime as dt
import re
import smtplib

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import invitations
from accounts.models import AccountLink, Invitation, InvitationBatch, InvitationKind
from accounts.tasks import invitation_batch_send_task
from billing.enrolment import links
from billing.errors import ApplicationError
from billing.models import CustomerAccount, ImportBatch
from tests.factories import CustomerAccountFactory
from tests.staff_support import staff_login

from .conftest import PASSWORD

LINK_RE = re.compile(r"https?://[^\s\"<>]+/me/invite/([A-Za-z0-9_-]+)/")
REFUSED = "refuses@example.com"


class FakeRefusingEmailBackend(LocmemBackend):
    """Test-only: the locmem outbox, except that the mail server refuses REFUSED, as a real one would for a dead
    mailbox (smtplib raises SMTPRecipientsRefused)."""

    def send_messages(self, messages):
        for message in messages:
            if REFUSED in message.to:
                raise smtplib.SMTPRecipientsRefused({REFUSED: (550, b"5.1.1 mailbox unavailable")})
        return super().send_messages(messages)


@pytest.fixture
def staff(db, django_user_model):
    return django_user_model.objects.create_superuser(email="admin@example.com", password="pw-Admin-123")


@pytest.fixture
def staff_client(staff):
    client = Client()
    staff_login(client, staff)
    return client


def _send_from_admin(staff_client, accounts, kind):
    """The changelist action, its intermediate page, then the worker (in-process)."""
    changelist = reverse("admin:billing_customeraccount_changelist")
    ids = [str(a.pk) for a in accounts]
    page = staff_client.post(changelist, {"action": "invitation_send_action", "_selected_action": ids})
    assert page.status_code == 200
    assert b"Send invitations" in page.content
    response = staff_client.post(
        changelist,
        {"action": "invitation_send_action", "_selected_action": ids, "kind": kind, "send_invitations": "1"},
    )
    batch = InvitationBatch.objects.latest("pk")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:accounts_invitationbatch_change", args=[batch.pk])
    invitation_batch_send_task(batch.pk)
    batch.refresh_from_db()
    return batch


def _token_in(message) -> str:
    match = LINK_RE.search(message.body)
    assert match, message.body
    return match.group(1)


def _path(token: str) -> str:
    return reverse("accounts:invitation", args=[token])


# --- The whole journey ------------------------------------------------------------------------------------------------


def test_join_invitation_from_admin_links_the_account_of_a_signed_in_payer(
    staff_client, account, make_payer, mailoutbox
):
    account.email = "payer@example.com"
    account.save()
    batch = _send_from_admin(staff_client, [account], InvitationKind.JOIN)
    assert (batch.status, batch.total, batch.processed, batch.sent) == ("done", 1, 1, 1)

    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["payer@example.com"]
    assert account.account_number in message.subject
    assert "adds account" in message.body and "expires on" in message.body and "works once" in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and account.biller.name in html and account.biller.brand_color in html
    token = _token_in(message)
    assert token in html

    payer = make_payer("payer@example.com")
    client = Client()
    client.force_login(payer)
    opened = client.get(_path(token))
    assert opened.status_code == 302 and opened["Location"] == reverse("accounts:invitation_continue")
    done = client.get(opened["Location"])  # the invited address is the login's own: no further click
    assert done.status_code == 302 and done["Location"] == reverse("accounts:dashboard")
    link = AccountLink.objects.get(user=payer, customer_account=account)
    assert link.created_via == AccountLink.Via.INVITED_EMAIL
    invitation = Invitation.objects.get()
    assert (invitation.status, invitation.used_by) == (Invitation.Status.USED, payer)
    # Single use: the same link again is the invalid-link page.
    again = client.get(_path(token))
    assert again.status_code == 404 and b"Send me a new link" in again.content


def test_join_without_a_login_signs_up_with_the_invited_address_and_verifies_it_by_e_mail_before_linking(
    staff_client, account, mailoutbox
):
    """Issue 8, item 3: signing up with the invited address used to mark it verified on the link alone, so whoever
    held a forwarded link got a login under the invited address with the account on it. Now allauth verifies the
    address like any sign-up, and the account is linked once the confirmed login comes back."""
    batch = _send_from_admin(staff_client, [account], InvitationKind.JOIN)
    assert batch.sent == 1
    token = _token_in(mailoutbox[0])
    client = Client()
    page = client.get(_path(token))
    assert page.status_code == 200
    assert f'value="{account.email}"'.encode() in page.content  # sign-up prefilled with the invited address
    assert page["Referrer-Policy"] == "same-origin"  # the token never reaches another site in a Referer

    continue_url = reverse("accounts:invitation_continue")
    response = client.post(
        reverse("accounts:invitation_signup"),
        {"email": account.email, "password1": PASSWORD, "password2": PASSWORD, "next": continue_url},
    )  # fmt: skip
    assert response.status_code == 302 and response["Location"] != continue_url  # "check your e-mail"
    address = EmailAddress.objects.get(email=account.email)
    assert not address.verified
    assert not AccountLink.objects.exists()
    assert len(mailoutbox) == 2 and mailoutbox[1].to == [account.email]  # allauth's confirmation e-mail

    confirm_url = re.search(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+)", mailoutbox[1].body).group(1)
    assert client.post(confirm_url).status_code == 302
    signed_in = client.post(reverse("account_login"), {"login": account.email, "password": PASSWORD})
    assert signed_in.status_code == 302
    reopened = client.get(_path(token))  # the link still works: the account is linked now, with no further click
    assert reopened["Location"] == continue_url
    assert client.get(continue_url)["Location"] == reverse("accounts:dashboard")
    address.refresh_from_db()
    assert address.verified and address.primary
    link = AccountLink.objects.get(user=address.user, customer_account=account)
    assert link.created_via == AccountLink.Via.INVITED_EMAIL


def test_join_with_an_existing_login_signs_in_and_links(account, make_payer, mailoutbox):
    payer = make_payer(account.email)
    _invitation, token = _issue(account)
    client = Client()
    page = client.get(_path(token))
    continue_url = reverse("accounts:invitation_continue")
    assert f'href="{reverse("account_login")}?next={continue_url}"'.encode() in page.content
    signed_in = client.post(reverse("account_login"), {"login": account.email, "password": PASSWORD,
                                                       "next": continue_url})  # fmt: skip
    assert signed_in.status_code == 302 and signed_in["Location"] == continue_url
    assert client.get(continue_url)["Location"] == reverse("accounts:dashboard")
    assert AccountLink.objects.filter(user=payer, customer_account=account).exists()


def test_signing_up_from_a_forwarded_link_with_another_address_verifies_that_address_and_never_takes_the_invited_one(
    staff_client, account, mailoutbox, django_user_model
):
    _send_from_admin(staff_client, [account], InvitationKind.JOIN)
    token = _token_in(mailoutbox[0])
    client = Client()
    client.get(_path(token))
    client.post(
        reverse("accounts:invitation_signup"),
        {"email": "friend@example.com", "password1": PASSWORD, "password2": PASSWORD,
         "next": reverse("accounts:invitation_continue")},
    )  # fmt: skip
    user = django_user_model.objects.get(email="friend@example.com")
    assert list(EmailAddress.objects.filter(user=user).values_list("email", "verified")) == [
        ("friend@example.com", False)
    ]
    assert not EmailAddress.objects.filter(email__iexact=account.email).exists()
    assert not AccountLink.objects.exists()  # not until that address is verified and the login signed in
    assert mailoutbox[-1].to == ["friend@example.com"]  # allauth's confirmation e-mail


def test_paperless_invitation_is_one_click_without_a_login(staff_client, account, client, mailoutbox):
    from billing.models import PaperlessEnrollment

    _send_from_admin(staff_client, [account], InvitationKind.PAPERLESS)
    message = mailoutbox[0]
    assert "paperless" in message.body and "don't need a login" in message.body
    token = _token_in(message)

    page = client.get(_path(token))
    assert page.status_code == 200
    assert f"Confirm paperless for account {account.account_number}".encode() in page.content
    assert not PaperlessEnrollment.objects.exists()  # opening the link (or a mail scanner doing so) changes nothing

    done = client.post(_path(token))
    assert done.status_code == 200 and b"Paperless bills are on" in done.content
    enrollment = PaperlessEnrollment.objects.get(account=account)
    assert enrollment.email == account.email and enrollment.via == "invitation"
    assert account.account_number in enrollment.consent_text and enrollment.user is None
    assert Invitation.objects.get().status == Invitation.Status.USED
    assert client.post(_path(token)).status_code == 404
    assert PaperlessEnrollment.objects.count() == 1


def test_autopay_invitation_links_then_opens_the_autopay_page(staff_client, account, make_payer, mailoutbox):
    _send_from_admin(staff_client, [account], InvitationKind.AUTOPAY)
    assert "Nothing is charged until you confirm" in mailoutbox[0].body
    payer = make_payer(account.email)
    client = Client()
    client.force_login(payer)
    client.get(_path(_token_in(mailoutbox[0])))
    response = client.get(reverse("accounts:invitation_continue"))
    try:
        expected = reverse("accounts:autopay", args=[account.pk])
    except Exception:  # noqa: BLE001 - the autopay page not there yet: the account page
        expected = reverse("accounts:account", args=[account.pk])
    assert response.status_code == 302 and response["Location"] == expected
    assert AccountLink.objects.filter(user=payer, customer_account=account).exists()


# --- Bad links: used, expired, tampered, unknown all look the same -------------------------------------------------


def _issue(account, kind=InvitationKind.JOIN, **kwargs):
    """Issue one invitation directly and return (invitation, token) read back from the e-mail."""
    result = invitations.invitation_issue(account=account, kind=kind, **kwargs)
    return result.invitation, _token_in(mail.outbox[-1])


def _invalid_page(response, token):
    """The page with what differs on every response anyway (the token echoed back, CSP nonce, CSRF token) masked."""
    content = response.content.decode().replace(token, "TOKEN")
    content = re.sub(r'nonce="[^"]*"', "nonce", content)
    content = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "csrf", content)
    return response.status_code, content


def test_expired_tampered_and_unknown_links_get_the_same_page(account, client, mailoutbox):
    invitation, token = _issue(account)
    assert invitations.invitation_get(token=token) is not None
    later = timezone.now() + dt.timedelta(days=invitations.VALID_DAYS, seconds=1)
    assert invitations.invitation_get(token=token, now=later) is None  # time travel through the `now` parameter

    # Time passes: the link's expiry is now behind us.
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    expired = client.get(_path(token))
    tampered_token = token[:-1] + ("A" if token[-1] != "A" else "B")
    tampered = client.get(_path(tampered_token))
    unknown_token = "x" * len(token)
    unknown = client.get(_path(unknown_token))
    assert expired.status_code == 404 and b"This link can" in expired.content
    assert _invalid_page(expired, token) == _invalid_page(tampered, tampered_token) == _invalid_page(
        unknown, unknown_token
    )


def test_used_link_offers_a_fresh_one_sent_only_to_the_address_on_file(account, client, make_payer, mailoutbox):
    invitation, token = _issue(account)
    invitations.invitation_accept_link(invitation=invitation, user=make_payer(account.email))
    page = client.get(_path(token))
    assert page.status_code == 404 and b"Send me a new link" in page.content

    # Whatever address the visitor adds to the form, the new link goes to the one on file.
    response = client.post(reverse("accounts:invitation_renew"), {"token": token, "email": "attacker@example.com"})
    assert response.status_code == 200 and b"Check your e-mail" in response.content
    assert mailoutbox[-1].to == [account.email] and len(mailoutbox) == 2
    fresh = _token_in(mailoutbox[-1])
    assert fresh != token and client.get(_path(fresh)).status_code == 200

    # An unknown token gets the same answer, and nothing is sent.
    same = client.post(reverse("accounts:invitation_renew"), {"token": "nope" * 11})
    assert _invalid_page(same, "-") == _invalid_page(response, "-")
    assert len(mailoutbox) == 2


def test_new_link_requests_are_rate_limited(account, client, mailoutbox):
    invitation, token = _issue(account)
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    renew = reverse("accounts:invitation_renew")
    client.post(renew, {"token": token})
    assert len(mailoutbox) == 2
    client.post(renew, {"token": token})  # same account again within the window: silently not sent
    assert len(mailoutbox) == 2
    statuses = [client.post(renew, {"token": token}).status_code for _ in range(invitations.RENEW_IP_LIMIT)]
    assert statuses[-1] == 429  # this connection asked too often
    assert len(mailoutbox) == 2


def test_a_forwarded_join_link_links_nothing_until_the_lookup_passes_and_changes_nothing_else_of_the_login(
    account, make_payer, mailoutbox
):
    """Issue 8, item 3. This test used to assert that one confirming click linked the invited account to any login
    that opened the link: a forwarded link gave a stranger the account's bills. Now a login of another address must
    pass the protected lookup (account number and second factor, same limits, same message for every miss)."""
    invitation, token = _issue(account)
    other = make_payer("someone.else@example.com")
    client = Client()
    client.force_login(other)
    client.get(_path(token))
    continue_url = reverse("accounts:invitation_continue")
    confirm = client.get(continue_url)
    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "someone.else@example.com" in page and 'name="account_number"' in page and 'name="postal_code"' in page
    assert account.email not in page  # the invited address is shown masked
    assert not AccountLink.objects.exists()

    assert client.post(continue_url).status_code == 200  # the old one-click confirmation
    wrong = client.post(continue_url, {"account_number": account.account_number, "postal_code": "00000"})
    elsewhere = CustomerAccountFactory(biller=account.biller)
    another = client.post(
        continue_url, {"account_number": elsewhere.account_number, "postal_code": elsewhere.postal_code}
    )
    miss = "We couldn&#x27;t find an account with those details."
    assert miss in wrong.content.decode() and miss in another.content.decode()
    assert not AccountLink.objects.exists()
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.SENT  # still there for the invited person

    linked = client.post(continue_url, {"account_number": account.account_number, "postal_code": account.postal_code})
    assert linked.status_code == 302
    assert list(AccountLink.objects.values_list("user", "customer_account", "created_via")) == [
        (other.pk, account.pk, AccountLink.Via.LOOKUP)
    ]
    other.refresh_from_db()
    assert other.email == "someone.else@example.com"
    assert list(EmailAddress.objects.filter(user=other).values_list("email", flat=True)) == [
        "someone.else@example.com"
    ]


def test_a_login_holding_the_invited_address_unverified_must_pass_the_lookup(account, make_payer, mailoutbox):
    _invitation, token = _issue(account)
    unverified = make_payer(account.email, verified=False)
    with pytest.raises(ApplicationError):
        invitations.invitation_accept_link(invitation=invitations.invitation_get(token=token), user=unverified)
    assert not AccountLink.objects.exists()


def test_a_paperless_link_sends_bills_only_to_the_invited_address_whoever_opens_it(account, make_payer, mailoutbox):
    from billing.models import PaperlessEnrollment

    _invitation, token = _issue(account, kind=InvitationKind.PAPERLESS)
    client = Client()
    client.force_login(make_payer("forwardee@example.com"))
    client.post(_path(token), {"email": "forwardee@example.com"})
    assert PaperlessEnrollment.objects.get().email == account.email


# --- What is stored ---------------------------------------------------------------------------------------------------


def test_only_the_hash_of_the_token_is_stored_and_the_token_has_at_least_128_bits(account, mailoutbox, monkeypatch):
    asked = []
    real = links.secrets.token_urlsafe
    monkeypatch.setattr(links.secrets, "token_urlsafe", lambda n: asked.append(n) or real(n))
    invitation, token = _issue(account)
    assert asked and min(asked) * 8 >= 128
    assert len(token) >= 22  # 128 bits in URL-safe base64
    assert invitation.token_hash == invitations.token_hash(token) and len(invitation.token_hash) == 64

    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                assert token not in " ".join(str(value) for value in row), table


def test_statuses_move_only_along_the_map(account, mailoutbox, make_payer):
    invitation, _token = _issue(account)
    invitations.invitation_accept_link(invitation=invitation, user=make_payer(account.email))
    invitation.refresh_from_db()
    from billing.errors import ApplicationError

    with pytest.raises(ApplicationError):
        invitations._transition(invitation, Invitation.Status.SENT)
    assert invitations.invitation_revoke(invitation=invitation) is False


# --- Bulk sends -------------------------------------------------------------------------------------------------------


@pytest.fixture
def imported(biller):
    """An imported file and the accounts it created: two with good addresses, one without, one that bounces."""
    batch = ImportBatch.objects.create(
        biller=biller, filename="june.csv", sha256="0" * 64, status=ImportBatch.Status.SUCCEEDED
    )
    accounts = [
        CustomerAccountFactory(biller=biller, import_batch=batch, email="one@example.com"),
        CustomerAccountFactory(biller=biller, import_batch=batch, email=""),
        CustomerAccountFactory(biller=biller, import_batch=batch, email=REFUSED),
        CustomerAccountFactory(biller=biller, import_batch=batch, email="four@example.com"),
    ]
    CustomerAccountFactory(biller=biller, email="not-in-the-file@example.com")
    return batch, accounts


def test_inviting_an_imported_file_counts_sent_bounced_and_no_email(
    staff_client, imported, mailoutbox, settings
):
    settings.EMAIL_BACKEND = "tests.accounts.test_invitations.FakeRefusingEmailBackend"
    import_batch, accounts = imported
    response = staff_client.post(
        reverse("admin:accounts_invitationbatch_add"), {"import_batch": import_batch.pk, "kind": "paperless"}
    )
    batch = InvitationBatch.objects.get()
    assert response.status_code == 302
    assert (batch.status, batch.total, batch.processed, batch.import_batch) == ("pending", 4, 0, import_batch)
    page = staff_client.get(reverse("admin:accounts_invitationbatch_change", args=[batch.pk]))
    assert b'http-equiv="refresh"' in page.content  # the progress page refreshes itself while it runs
    assert staff_client.get(reverse("admin:accounts_invitationbatch_add")).status_code == 200
    assert staff_client.get(reverse("admin:accounts_invitationbatch_changelist")).status_code == 200

    invitation_batch_send_task(batch.pk)
    batch.refresh_from_db()
    assert (batch.status, batch.processed, batch.sent, batch.failed, batch.skipped_no_email) == ("done", 4, 2, 1, 1)
    assert sorted(m.to[0] for m in mailoutbox) == ["four@example.com", "one@example.com"]
    results = dict(Invitation.objects.filter(batch=batch).values_list("customer_account_id", "status"))
    assert results == {
        accounts[0].pk: "sent",
        accounts[1].pk: "no_email",
        accounts[2].pk: "bounced",
        accounts[3].pk: "sent",
    }
    assert "550" in Invitation.objects.get(status="bounced").error

    page = staff_client.get(reverse("admin:accounts_invitationbatch_change", args=[batch.pk]))
    content = page.content.decode()
    assert 'http-equiv="refresh"' not in content
    assert "4 / 4 (100%)" in content and "550 5.1.1 mailbox unavailable" in content and "No e-mail on file" in content
    listing = staff_client.get(reverse("admin:accounts_invitation_changelist"), {"batch__id__exact": batch.pk})
    assert listing.status_code == 200 and REFUSED in listing.content.decode()


def test_a_batch_runs_in_slices_and_a_repeated_delivery_sends_nothing_twice(imported, staff, mailoutbox):
    import_batch, _accounts = imported
    batch = invitations.invitation_batch_start(kind="join", created_by=staff, import_batch=import_batch)
    assert invitations.invitation_batch_run(batch_id=batch.pk, limit=2) is False
    batch.refresh_from_db()
    assert (batch.status, batch.processed) == ("running", 2)
    sent_so_far = len(mailoutbox)

    # A second delivery of the same task starts after the cursor, then the batch finishes.
    assert invitations.invitation_batch_run(batch_id=batch.pk) is True
    assert invitations.invitation_batch_run(batch_id=batch.pk) is True  # and once more: nothing to do
    invitation_batch_send_task(batch.pk)
    batch.refresh_from_db()
    assert batch.processed == 4 and len(mailoutbox) == sent_so_far + 2 == 3
    assert Invitation.objects.filter(batch=batch).count() == 4


def test_a_transport_failure_rolls_the_account_back_for_a_retry(account, staff, monkeypatch, mailoutbox):
    batch = invitations.invitation_batch_start(
        kind="join", created_by=staff, accounts=CustomerAccount.objects.filter(pk=account.pk)
    )

    def down(*args, **kwargs):
        raise smtplib.SMTPServerDisconnected("connection lost")

    monkeypatch.setattr(invitations, "_send_email", down)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        invitations.invitation_batch_run(batch_id=batch.pk)
    batch.refresh_from_db()
    assert (batch.processed, batch.cursor) == (0, 0) and not Invitation.objects.exists()
    monkeypatch.undo()
    assert invitations.invitation_batch_run(batch_id=batch.pk) is True
    batch.refresh_from_db()
    assert (batch.processed, batch.sent) == (1, 1) and len(mailoutbox) == 1


def test_sending_again_skips_accounts_with_a_valid_link_and_replaces_one_sent_to_an_old_address(
    account, staff, mailoutbox
):
    picked = CustomerAccount.objects.filter(pk=account.pk)
    first = invitations.invitation_batch_start(kind="join", created_by=staff, accounts=picked)
    invitations.invitation_batch_run(batch_id=first.pk)
    assert len(mailoutbox) == 1

    again = invitations.invitation_batch_start(kind="join", created_by=staff, accounts=picked)
    invitations.invitation_batch_run(batch_id=again.pk)
    again.refresh_from_db()
    assert (again.sent, again.skipped_already_invited) == (0, 1) and len(mailoutbox) == 1

    other_kind = invitations.invitation_batch_start(kind="paperless", created_by=staff, accounts=picked)
    invitations.invitation_batch_run(batch_id=other_kind.pk)
    assert len(mailoutbox) == 2  # a different kind is a different invitation

    old_token = _token_in(mailoutbox[0])
    account.email = "new.address@example.com"
    account.save()
    moved = invitations.invitation_batch_start(kind="join", created_by=staff, accounts=picked)
    invitations.invitation_batch_run(batch_id=moved.pk)
    assert mailoutbox[-1].to == ["new.address@example.com"]
    assert invitations.invitation_get(token=old_token) is None  # the link to the old address was revoked
    assert Invitation.objects.filter(kind="join", status__in=Invitation.LIVE_STATUSES).count() == 1


# --- CSRF on every POST step ------------------------------------------------------------------------------------------


def test_every_post_step_needs_the_csrf_token(account, make_payer, mailoutbox):
    paperless, paperless_token = _issue(account, kind=InvitationKind.PAPERLESS)
    _join, join_token = _issue(account, kind=InvitationKind.JOIN)
    client = Client(enforce_csrf_checks=True)
    assert client.post(_path(paperless_token)).status_code == 403
    assert client.post(reverse("accounts:invitation_renew"), {"token": join_token}).status_code == 403
    client.get(_path(join_token))
    signup = {"email": account.email, "password1": PASSWORD, "password2": PASSWORD}
    assert client.post(reverse("accounts:invitation_signup"), signup).status_code == 403
    client.force_login(make_payer("other@example.com"))
    assert client.post(reverse("accounts:invitation_continue")).status_code == 403
    paperless.refresh_from_db()
    assert paperless.status == Invitation.Status.SENT and not AccountLink.objects.exists()
    assert len(mailoutbox) == 2

    # With the token the page gives, the same POST works.
    page = client.get(_path(paperless_token))
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    renewed = client.post(reverse("accounts:invitation_renew"), {"token": join_token, "csrfmiddlewaretoken": csrf})
    assert renewed.status_code == 200 and len(mailoutbox) == 3


def test_the_send_action_needs_the_permission(account, client, django_user_model):
    clerk = django_user_model.objects.create_user(email="clerk2@example.com", password="x", is_staff=True)
    from django.contrib.auth.models import Permission

    clerk.user_permissions.add(Permission.objects.get(codename="view_customeraccount"))
    staff_login(client, clerk)
    response = client.post(
        reverse("admin:billing_customeraccount_changelist"),
        {"action": "invitation_send_action", "_selected_action": [account.pk], "kind": "join",
         "send_invitations": "1"},
    )  # fmt: skip
    assert response.status_code == 403
    assert not InvitationBatch.objects.exists()


@pytest.mark.postgres
def test_two_deliveries_of_the_batch_task_at_once_mail_each_account_once(require_postgres, transactional_db, staff):
    """Real threads on PostgreSQL: the batch's row lock and cursor make the second worker skip what the first sent."""
    from tests.concurrency import at_once
    from tests.factories import BillerFactory

    biller = BillerFactory()
    accounts = [CustomerAccountFactory(biller=biller) for _ in range(12)]
    batch = invitations.invitation_batch_start(
        kind="join", created_by=staff, accounts=CustomerAccount.objects.filter(pk__in=[a.pk for a in accounts])
    )
    mail.outbox = []
    errors = at_once(lambda: invitation_batch_send_task(batch.pk))
    assert not errors
    batch.refresh_from_db()
    assert (batch.status, batch.processed, batch.sent) == ("done", 12, 12)
    assert sorted(m.to[0] for m in mail.outbox) == sorted(a.email for a in accounts)
