"""Sweeping and sending: claim, send once, retry with backoff in the row, stop as failed, reclaim lost rows, skip what
is no longer true, and honour preferences, STOP and quiet hours."""

import datetime as dt

import pytest
from django.core import mail

from billing.payments.offline import payment_record_offline
from notifications import services
from notifications.channels import PermanentSendError, TransientSendError
from notifications.models import AccountNoticeSettings, DeliveryAttempt, NoticePolicy, NoticePreference, Notification
from notifications.planner import reminders_plan
from notifications.services import notification_send, notifications_sweep

from .conftest import DUE, at, day, issued_bill

pytestmark = pytest.mark.django_db
Status = Notification.Status


def plan(today):
    """Plan in the early morning of `today`: scheduled reminders are then due at 09:00 (the default send time)."""
    return reminders_plan(today=today, now=at(today, 6))


def live():
    return Notification.objects.exclude(status=Status.SKIPPED)


def sweep_and_send(now):
    """What beat and the worker do, in-process: one sweep, then each claimed row's task."""
    claimed = notifications_sweep(now=now, enqueue=False).claimed
    return {pk: notification_send(notification_id=pk, now=now) for pk in claimed}


def test_due_rows_go_out_once_on_each_channel(texting_account, sms_locmem):
    bill = issued_bill(texting_account)
    plan(DUE)
    assert sweep_and_send(at(DUE, 8)) == {}  # planned for 09:00
    outcome = sweep_and_send(at(DUE, 9))
    assert sorted(outcome.values()) == ["sent", "sent"]
    assert len(mail.outbox) == 1 and len(sms_locmem) == 1
    assert "due today" in mail.outbox[0].subject
    assert sms_locmem[0].to == "+15550100123"
    assert sms_locmem[0].body.endswith(services.notification_render.__globals__["pay_url_for"](bill))
    email_row = live().get(channel="email")
    assert email_row.provider_id and email_row.sent_at == at(DUE, 9) and email_row.attempts == 1
    assert email_row.recipient == texting_account.email
    # Again and again: nothing more goes out.
    assert sweep_and_send(at(DUE, 10)) == {}
    assert notification_send(notification_id=email_row.pk, now=at(DUE, 10)) == "noop"
    assert len(mail.outbox) == 1 and len(sms_locmem) == 1


def test_a_second_delivery_of_the_same_task_sends_nothing(account):
    issued_bill(account)
    plan(DUE)
    [pk] = notifications_sweep(now=at(DUE, 9), enqueue=False).claimed
    assert notification_send(notification_id=pk, now=at(DUE, 9)) == "sent"
    assert notification_send(notification_id=pk, now=at(DUE, 9)) == "noop"
    assert len(mail.outbox) == 1


def test_transient_errors_retry_with_backoff_then_fail_with_the_reason(account, settings, monkeypatch):
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 3
    issued_bill(account, due=day(-3))  # three days past due: step 3 today
    plan(DUE)
    calls = []

    def flaky(self, message):
        calls.append(message.to)
        raise TransientSendError("SMTP 451: try later")

    monkeypatch.setattr("notifications.channels.EmailChannel.send", flaky)
    now = at(DUE, 9)
    sweep_and_send(now)
    row = live().get()
    assert (row.status, row.attempts, row.next_attempt_at) == (Status.PENDING, 1, now + dt.timedelta(minutes=1))
    assert sweep_and_send(now + dt.timedelta(seconds=59)) == {}  # not before the backoff
    sweep_and_send(now + dt.timedelta(minutes=1))
    row.refresh_from_db()
    assert (row.attempts, row.next_attempt_at) == (2, now + dt.timedelta(minutes=3))
    sweep_and_send(now + dt.timedelta(minutes=3))
    row.refresh_from_db()
    assert row.status == Status.FAILED and row.attempts == 3
    assert "SMTP 451" in row.last_error and "gave up after 3 attempts" in row.last_error
    assert list(row.delivery_attempts.values_list("outcome", flat=True)) == ["transient"] * 3
    assert len(calls) == 3
    assert sweep_and_send(now + dt.timedelta(days=1)) == {}


def test_a_permanent_error_fails_at_once(account, monkeypatch):
    issued_bill(account)
    plan(DUE)

    def refused(self, message):
        raise PermanentSendError("550 no such user")

    monkeypatch.setattr("notifications.channels.EmailChannel.send", refused)
    sweep_and_send(at(DUE, 9))
    row = live().get()
    assert row.status == Status.FAILED and row.attempts == 1 and "550" in row.last_error


def test_a_row_stuck_in_sending_is_reclaimed_after_the_timeout(account, settings):
    settings.NOTIFICATIONS_SENDING_TIMEOUT_SECONDS = 600
    issued_bill(account)
    plan(DUE)
    [pk] = notifications_sweep(now=at(DUE, 9), enqueue=False).claimed  # the task message is lost
    # and beat was down too, so no minute sweep sent it again (tests/notifications/test_lost_messages.py)
    result = notifications_sweep(now=at(DUE, 9, 11), enqueue=False)
    assert result.reclaimed == 1 and result.claimed == [pk]
    assert notification_send(notification_id=pk, now=at(DUE, 9, 11)) == "sent"
    assert len(mail.outbox) == 1


def test_a_worker_that_died_mid_send_counts_as_an_attempt(account, settings):
    issued_bill(account)
    plan(DUE)
    [pk] = notifications_sweep(now=at(DUE, 9), enqueue=False).claimed
    Notification.objects.filter(pk=pk).update(attempt_started_at=at(DUE, 9), attempts=1)  # started, then died
    notifications_sweep(now=at(DUE, 9, 30), enqueue=False)
    row = Notification.objects.get(pk=pk)
    assert row.status == Status.PENDING and row.next_attempt_at == at(DUE, 9, 30) + dt.timedelta(minutes=1)
    assert DeliveryAttempt.objects.get(notification=row).outcome == "lost"


def test_a_bill_paid_before_the_send_is_skipped(account):
    bill = issued_bill(account)
    plan(DUE)
    payment_record_offline(account=account, amount=bill.total, method="cash")
    assert list(sweep_and_send(at(DUE, 9)).values()) == ["skipped"]
    assert mail.outbox == []
    assert "no longer owes" in Notification.objects.get(step=0).last_error


def test_due_soon_delayed_past_the_due_date_is_skipped_at_send_time(account):
    issued_bill(account)
    plan(day(-5))
    assert list(sweep_and_send(at(DUE, 9)).values()) == ["skipped"]  # the workers were down until the due date
    assert "due date has come" in Notification.objects.get(step=-5).last_error


def test_stop_reply_is_honoured_even_for_rows_already_planned(texting_account, sms_locmem):
    issued_bill(texting_account)
    plan(DUE)
    services.sms_opt_out_record(phone="+15550100123", keyword="STOP")
    outcome = sweep_and_send(at(DUE, 9))
    assert sorted(outcome.values()) == ["sent", "skipped"]
    assert sms_locmem == [] and len(mail.outbox) == 1
    assert "STOP" in Notification.objects.get(channel="sms", step=0).last_error
    # Opted out numbers are not planned at all next time.
    issued_bill(texting_account, due=day(3))
    plan(day(3))
    assert not Notification.objects.filter(channel="sms", status=Status.PENDING).exists()


def test_explicit_preferences_beat_defaults_within_what_the_biller_allows(texting_account, biller):
    NoticePreference.objects.create(account=texting_account, kind="due_today", channel="email", enabled=False)
    NoticePreference.objects.create(account=texting_account, kind="bill_issued", channel="sms", enabled=True)
    bill = issued_bill(texting_account, issued=DUE)
    plan(DUE)
    assert sorted(live().values_list("dedupe_key", flat=True)) == [
        f"bill:{bill.pk}:bill_issued:email",
        f"bill:{bill.pk}:bill_issued:sms",
        f"bill:{bill.pk}:due_today:sms:0",
    ]
    Notification.objects.all().delete()
    NoticePolicy.objects.create(biller=biller, channels_by_kind={"bill_issued": ["email"], "due_today": ["email"]})
    plan(DUE)
    # The biller allows no SMS at all now, and the payer turned off the due-today e-mail.
    assert sorted(live().values_list("dedupe_key", flat=True)) == [f"bill:{bill.pk}:bill_issued:email"]


def test_no_address_means_no_row(biller):
    from tests.factories import CustomerAccountFactory

    silent = CustomerAccountFactory(biller=biller, email="", phone="+15550100999", sms_notices=False)
    issued_bill(silent)
    plan(DUE)
    assert not Notification.objects.exists()


def test_quiet_hours_defer_a_send_to_their_end(texting_account, biller, sms_locmem):
    biller.time_zone = "America/New_York"
    biller.save()
    NoticePolicy.objects.create(biller=biller, quiet_hours_start=dt.time(21, 0), quiet_hours_end=dt.time(8, 0))
    issued_bill(texting_account, due=day(30))
    payment = payment_record_offline(account=texting_account, amount=100, method="cash")
    # 02:30 UTC is 22:30 the evening before in New York (EDT from 9 March 2025): quiet until 08:00 there, 12:00 UTC.
    services.notice_enqueue(kind="payment_failed", account=texting_account, payment=payment, now=at(DUE, 2, 30))
    rows = Notification.objects.filter(payment=payment)
    assert {r.channel for r in rows} == {"email", "sms"}
    assert {r.next_attempt_at for r in rows} == {at(DUE, 12)}
    assert sweep_and_send(at(DUE, 11, 59)) == {}
    assert sorted(sweep_and_send(at(DUE, 12)).values()) == ["sent", "sent"]


def test_a_receipt_is_not_held_back_by_quiet_hours(texting_account, biller, sms_locmem):
    biller.time_zone = "America/New_York"
    biller.save()
    NoticePolicy.objects.create(biller=biller, quiet_hours_start=dt.time(21, 0), quiet_hours_end=dt.time(8, 0))
    issued_bill(texting_account, due=day(30))
    payment = payment_record_offline(account=texting_account, amount=100, method="cash")
    # 22:30 in New York: the payer just paid, so the receipt goes now, not at 08:00.
    rows = services.notice_enqueue(kind="payment_received", account=texting_account, payment=payment, now=at(DUE, 2, 30))
    assert rows and {r.next_attempt_at for r in rows} == {at(DUE, 2, 30)}
    assert set(sweep_and_send(at(DUE, 2, 31)).values()) == {"sent"}


def test_quiet_hours_checked_again_at_send_time(account):
    AccountNoticeSettings.objects.create(
        account=account, quiet_hours_start=dt.time(22, 0), quiet_hours_end=dt.time(7, 30), time_zone="Europe/Madrid"
    )
    issued_bill(account)
    plan(day(-5))  # planned 09:00 UTC, outside quiet hours in Madrid
    # The workers were down all day; the sweep runs at 22:10 UTC = 23:10 in Madrid (CET): deferred to 07:30 Madrid.
    assert list(sweep_and_send(at(day(-5), 22, 10)).values()) == ["pending"]
    row = live().get()
    assert row.next_attempt_at == at(day(-4), 6, 30) and row.attempts == 0
    assert mail.outbox == []
    assert list(sweep_and_send(at(day(-4), 6, 30)).values()) == ["sent"]


def test_illegal_transitions_are_refused(account):
    from billing.errors import ApplicationError

    issued_bill(account)
    plan(DUE)
    row = live().get()
    Notification.objects.filter(pk=row.pk).update(status=Status.SENT)
    row.refresh_from_db()
    with pytest.raises(ApplicationError):
        services._move(row, Status.PENDING, now=at(DUE))
    assert not row.can_transition_to(Status.SENDING)


def test_an_event_notice_is_written_once_per_channel(texting_account, sms_locmem):
    bill = issued_bill(texting_account)
    payment = payment_record_offline(account=texting_account, amount=bill.total, method="cash")
    first = services.notice_enqueue(kind="payment_received", account=texting_account, payment=payment, now=at(DUE, 9))
    again = services.notice_enqueue(kind="payment_received", account=texting_account, payment=payment, now=at(DUE, 10))
    # Receipts are e-mail only by default: SMS is for the urgent kinds unless the payer asks for more.
    assert (
        [n.dedupe_key for n in first]
        == [f"payment:{payment.pk}:payment_received:email"]
        == [n.dedupe_key for n in again]
    )
    assert list(sweep_and_send(at(DUE, 10)).values()) == ["sent"]
    assert mail.outbox[0].subject == "Payment received: $50.00"
    assert payment.confirmation_number in mail.outbox[0].body
