import pytest
from django.core.management import call_command
from django.urls import reverse

from notifications.models import Notification
from notifications.planner import reminders_plan
from tests.staff_support import staff_login

from .conftest import DUE, at, issued_bill

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser(email="root@example.com", password="pw-Root-123")


def test_the_admin_lists_and_searches_the_outbox_read_only(client, superuser, texting_account):
    bill = issued_bill(texting_account)
    reminders_plan(today=DUE, now=at(DUE, 6))
    staff_login(client, superuser)
    url = reverse("admin:notifications_notification_changelist")
    page = client.get(url, {"q": bill.number, "status__exact": "pending", "channel__exact": "sms"})
    assert page.status_code == 200
    assert f"bill:{bill.pk}:due_today:sms:0".encode() in page.content
    assert f"bill:{bill.pk}:due_today:email:0".encode() not in page.content
    row = Notification.objects.get(channel="sms", step=0)
    detail = client.get(reverse("admin:notifications_notification_change", args=[row.pk]))
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert (
        client.post(reverse("admin:notifications_notification_delete", args=[row.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert client.get(reverse("admin:notifications_notification_add")).status_code == 403


def test_the_command_shows_what_is_due_and_sweeps_by_hand(account, capsys, monkeypatch):
    issued_bill(account, due=DUE)
    reminders_plan(today=DUE, now=at(DUE, 0))  # due at 09:00 on DUE, long past in real time
    enqueued = []
    monkeypatch.setattr("notifications.tasks.notification_send_task.delay_on_commit", enqueued.append)
    call_command("notifications_due")
    out = capsys.readouterr().out
    assert "due now: 1" in out and "due_today:email:0" in out
    call_command("notifications_due", "--sweep")
    out = capsys.readouterr().out
    assert "swept: 1 claimed" in out
    assert enqueued == [Notification.objects.get(step=0).pk]
    assert Notification.objects.get(step=0).status == "sending"
