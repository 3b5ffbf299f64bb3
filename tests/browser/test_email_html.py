"""The e-mails' HTML is as accessible as the pages (issue 10): every notice kind, in English and Arabic, and the
invitation, rendered into a 360 px page and checked by axe-core, with nothing scrolling sideways."""

import pytest
from django.core import mail
from django.utils import timezone

from billing.payments.offline import payment_record_offline
from notifications.models import Notification
from notifications.render import notification_render
from tests.browser.conftest import axe_serious_violations
from tests.factories import BillerFactory, CustomerAccountFactory, make_bill

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


@pytest.mark.parametrize("language", ["en", "ar"])
def test_every_notice_emails_html_passes_axe_on_a_phone(phone, language):
    account = CustomerAccountFactory(biller=BillerFactory(), language=language, email="dana@example.com")
    bill = make_bill(account, amounts=(6249,), number="RW-2026-000123")
    payment = payment_record_offline(account=account, amount=1000, method="cash")
    problems = {}
    for kind, _label in Notification._meta.get_field("kind").choices:
        row = Notification(
            dedupe_key=f"t:{kind}", biller=account.biller, account=account, bill=bill,
            payment=payment if kind.startswith("payment") else None, kind=kind, channel="email", step=3,
            send_at=timezone.now(),
        )  # fmt: skip
        phone.set_content(notification_render(row, to=account.email).html)
        serious = [v["id"] for v in axe_serious_violations(phone)]
        wide = phone.evaluate("document.documentElement.scrollWidth") > 360
        if serious or wide:
            problems[kind] = {"axe": serious, "too_wide": wide}
    assert problems == {}


def test_the_invitation_emails_html_passes_axe_on_a_phone(phone):
    from accounts import invitations

    mail.outbox = []
    account = CustomerAccountFactory(biller=BillerFactory(), language="fa", email="dana@example.com")
    invitations.invitation_issue(account=account, kind="join")
    (message,) = mail.outbox
    phone.set_content(message.alternatives[0][0])
    assert axe_serious_violations(phone) == []
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
