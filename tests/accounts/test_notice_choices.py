"""A payer chooses which notices an account gets, per kind and channel, within what the biller offers."""

import pytest
from django.urls import reverse

from accounts.models import AccountLink
from accounts.services import account_link_grant
from notifications.models import NoticePolicy, NoticePreference, SmsOptOut
from notifications.services import notice_enqueue
from tests.factories import CustomerAccountFactory, make_bill


@pytest.fixture
def linked(payer, biller):
    account = CustomerAccountFactory(biller=biller, email="home@example.com", phone="+15550100200", sms_notices=False)
    account_link_grant(user=payer, account=account, via=AccountLink.Via.LOOKUP)
    return account


def _input(html: str, kind: str, channel: str) -> str:
    """The whole <input …> tag of one choice."""
    marker = f'id="notice-{kind}-{channel}"'
    before, after = html.split(marker, 1)
    return before.rsplit("<input", 1)[1] + marker + after.split(">", 1)[0]


def _checked(html: str, kind: str, channel: str) -> bool:
    return " checked" in _input(html, kind, channel)


def test_the_grid_shows_the_defaults(payer_client, linked):
    html = payer_client.get(reverse("accounts:notices", args=[linked.pk])).content.decode()
    assert _checked(html, "past_due", "email")  # e-mail on by default
    assert not _checked(html, "past_due", "sms")  # text messages only after opting in


def test_saving_changes_what_the_outbox_sends(payer_client, linked):
    bill = make_bill(linked)
    response = payer_client.post(
        reverse("accounts:notices", args=[linked.pk]), {"notice": ["payment_failed:sms", "payment_failed:email"]}
    )
    assert response.status_code == 302
    assert NoticePreference.objects.get(account=linked, kind="past_due", channel="email").enabled is False
    assert NoticePreference.objects.get(account=linked, kind="payment_failed", channel="sms").enabled is True
    rows = notice_enqueue(kind="payment_failed", account=linked, bill=bill)
    assert sorted(r.channel for r in rows) == ["email", "sms"]
    assert notice_enqueue(kind="refund_issued", account=linked, bill=bill) == []  # switched off on every channel


def test_a_channel_the_biller_does_not_offer_cannot_be_switched_on(payer_client, linked, biller):
    NoticePolicy.objects.create(biller=biller, channels_by_kind={"past_due": ["email"]})
    html = payer_client.get(reverse("accounts:notices", args=[linked.pk])).content.decode()
    assert " disabled" in _input(html, "past_due", "sms")
    assert " disabled" not in _input(html, "past_due", "email")
    payer_client.post(reverse("accounts:notices", args=[linked.pk]), {"notice": ["past_due:sms"]})
    assert not NoticePreference.objects.filter(account=linked, kind="past_due", channel="sms").exists()


def test_stop_is_explained_and_sms_stays_off(payer_client, linked):
    SmsOptOut.objects.create(phone="+15550100200")
    html = payer_client.get(reverse("accounts:notices", args=[linked.pk])).content.decode()
    assert "You replied STOP" in html
    payer_client.post(reverse("accounts:notices", args=[linked.pk]), {"notice": ["past_due:sms"]})
    assert not NoticePreference.objects.filter(account=linked, channel="sms", enabled=True).exists()


def test_someone_elses_account_is_not_found(payer_client, biller):
    theirs = CustomerAccountFactory(biller=biller)
    assert payer_client.get(reverse("accounts:notices", args=[theirs.pk])).status_code == 404
    assert payer_client.post(reverse("accounts:notices", args=[theirs.pk]), {"notice": ["past_due:email"]}).status_code == 404
    assert not NoticePreference.objects.exists()


def test_the_page_runs_a_fixed_number_of_queries(payer_client, linked, django_assert_max_num_queries):
    for _ in range(5):
        make_bill(linked)
    with django_assert_max_num_queries(12):
        payer_client.get(reverse("accounts:notices", args=[linked.pk]))
