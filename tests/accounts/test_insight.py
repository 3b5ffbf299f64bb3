"""The portal's figures on the insight page (accounts/insight.py): sign-ins per active account and the invitation
funnel, on insight_support.py's biller (3 active accounts in October, 2 in September) plus these rows:

    sign-ins  U1 (linked to A1 and A2): Sep 10, Oct 3, Oct 20; U2 (A3): Oct 5; U3 (linked to nothing): Oct 7
    invitations, all created in October:
      I1  A1  paperless  batch X  sent Oct 2             not used
      I2  A2  paperless  batch X  sent Oct 8, used Oct 10  A2's paperless (Oct 10) came through an invitation
      I3  A5  paperless  batch X  no e-mail on file, never sent
      I4  A3  autopay    single   sent Oct 1             not used (A3's autopay dates from Sep 1, before it)
      I5  A4  join       single   sent Oct 4, used Oct 5   A4 linked to login U4 by the invitation on Oct 5
"""

import datetime as dt

import pytest

from accounts.models import AccountLink, Invitation, InvitationBatch, PortalSignIn
from billing.insight.charts import cell_text
from billing.insight.periods import LAST_MONTH, period_make
from billing.insight.selectors import insight_report_build
from billing.models import PaperlessEnrollment
from tests.billing.insight.insight_support import TODAY, at, build



def user(django_user_model, email, *accounts):
    u = django_user_model.objects.create_user(email=email, password="pw-Payer-123")
    for account in accounts:
        AccountLink.objects.create(user=u, customer_account=account, created_via="lookup")
    return u


def sign_in(u, day):
    s = PortalSignIn.objects.create(user=u)
    PortalSignIn.objects.filter(pk=s.pk).update(created_at=at(day))


def invite(account, kind, number, *, batch=None, sent=None, used=None, status="sent"):
    i = Invitation.objects.create(
        customer_account=account, kind=kind, email="x@example.com", token_hash=f"{number:064d}", status=status,
        batch=batch, sent_at=at(sent) if sent else None, used_at=at(used) if used else None,
        expires_at=at("2026-12-31"),
    )  # fmt: skip
    Invitation.objects.filter(pk=i.pk).update(created_at=at(sent or "2026-10-02", 8))


@pytest.fixture
def data(db, django_user_model):
    data = build(django_user_model)
    a1, a2, a3, a4, a5 = data.accounts
    u1, u2 = user(django_user_model, "u1@example.com", a1, a2), user(django_user_model, "u2@example.com", a3)
    u3 = user(django_user_model, "u3@example.com")
    for u, day in ((u1, "2026-09-10"), (u1, "2026-10-03"), (u1, "2026-10-20"), (u2, "2026-10-05"), (u3, "2026-10-07")):
        sign_in(u, day)
    batch = InvitationBatch.objects.create(kind="paperless", status="done")
    invite(a1, "paperless", 1, batch=batch, sent="2026-10-02")
    invite(a2, "paperless", 2, batch=batch, sent="2026-10-08", used="2026-10-10", status="used")
    PaperlessEnrollment.objects.filter(account=a2).update(via="invitation")
    invite(a5, "paperless", 3, batch=batch, status="no_email")
    invite(a3, "autopay", 4, sent="2026-10-01")
    invite(a4, "join", 5, sent="2026-10-04", used="2026-10-05", status="used")
    u4 = user(django_user_model, "u4@example.com")  # never signs in: linking does not count as a sign-in
    link = AccountLink.objects.create(user=u4, customer_account=a4, created_via="invited_email")
    AccountLink.objects.filter(pk=link.pk).update(created_at=at("2026-10-05"))
    data.batch = batch
    return data


@pytest.fixture
def report(data):
    return insight_report_build(biller=data.biller, period=period_make(kind=LAST_MONTH, today=TODAY), today=TODAY)


def text(rows):
    return [[cell_text(c) for c in row] for row in rows]


def test_sign_ins_per_active_account(report):
    figure = next(f for f in report.section("adoption").figures if f.label == "Portal sign-ins per account")
    # October: U1 twice (once each, though linked to two accounts) + U2 once = 3; U3 is linked to none of the
    # biller's accounts → 3 ÷ 3 active = 1.00. September: U1 once ÷ 2 active = 0.50.
    assert cell_text(figure.value) == "1.00" and cell_text(figure.previous) == "0.50"
    trend = {row[0]: row[1:] for row in text(report.table("sign_ins_trend").rows)}
    assert trend["2026-10"] == ["3", "3", "1.00"]
    assert trend["2026-09"] == ["1", "2", "0.50"]
    assert trend["2026-06"] == ["0", "1", "0.00"]
    assert trend["2026-01"] == ["0", "0", "—"]


def test_invitation_funnel_by_kind_and_batch(report, data):
    # join: I5 sent, used, enrolled. paperless: I1 and I2 sent (I3 never), I2 used and enrolled → 1 of 2 = 50%.
    # autopay: I4 sent, not used; A3's autopay predates it → not enrolled.
    assert text(report.table("invitations_by_kind").rows) == [
        ["the online portal", "1", "1", "1", "100.0%", "100.0%"],
        ["paperless bills", "2", "1", "1", "50.0%", "50.0%"],
        ["autopay", "1", "0", "0", "0.0%", "0.0%"],
    ]
    assert text(report.table("invitations_by_batch").rows) == [
        ["single", "autopay", "1", "0", "0", "0.0%", "0.0%"],
        ["single", "the online portal", "1", "1", "1", "100.0%", "100.0%"],
        [f"#{data.batch.pk}", "paperless bills", "2", "1", "1", "50.0%", "50.0%"],
    ]


def test_payer_sign_in_is_recorded_and_staff_sign_in_is_not(client, db, django_user_model):
    payer = django_user_model.objects.create_user(email="p@example.com", password="pw-Payer-123")
    staff = django_user_model.objects.create_user(email="s@example.com", password="pw-Staff-123", is_staff=True)
    client.force_login(payer)
    client.force_login(staff)
    assert list(PortalSignIn.objects.values_list("user__email", flat=True)) == ["p@example.com"]
    assert PortalSignIn.objects.get().created_at.date() >= dt.date(2026, 1, 1)
