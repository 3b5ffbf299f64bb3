"""Reminders and notices as data: what the biller allows, what each payer chose, who said STOP, and the outbox.

The outbox (`Notification`) holds one row per (bill or payment, kind, channel, schedule step). Its `dedupe_key` is
unique, so planning twice, two sweepers at once or a redelivered task can never produce a second message. Status
changes go only through notifications/services.py, which checks `Notification.TRANSITIONS`.
"""

import datetime as dt

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from billing.models.base import TransitionsMixin


class NoticeKind(models.TextChoices):
    BILL_ISSUED = "bill_issued", _("New bill")
    DUE_UPCOMING = "due_upcoming", _("Bill due soon")
    DUE_TODAY = "due_today", _("Bill due today")
    PAST_DUE = "past_due", _("Bill past due")
    AUTOPAY_UPCOMING = "autopay_upcoming", _("Autopay charge coming")
    PAYMENT_RECEIVED = "payment_received", _("Payment received")
    PAYMENT_FAILED = "payment_failed", _("Payment failed")
    CARD_EXPIRING = "card_expiring", _("Card expiring")
    AUTOPAY_SUSPENDED = "autopay_suspended", _("Autopay suspended")
    REFUND_ISSUED = "refund_issued", _("Refund issued")
    PLAN_PROPOSED = "plan_proposed", _("Payment plan offered")
    PLAN_ACTIVE = "plan_active", _("Payment plan started")
    PLAN_INSTALMENT_DUE = "plan_instalment_due", _("Instalment due")
    PLAN_BROKEN = "plan_broken", _("Payment plan ended")
    MANDATE_CONFIRMED = "mandate_confirmed", _("Direct debit mandate confirmed")
    DEBIT_NOTICE = "debit_notice", _("Bank debit coming (pre-notification)")


class ChannelName(models.TextChoices):
    """The channels the outbox knows. A new one (WhatsApp, push) adds a choice here and a class in channels.py."""

    EMAIL = "email", _("E-mail")
    SMS = "sms", _("Text message")


class NoticePolicy(models.Model):
    """What one biller allows and when it sends. A biller without a row gets the defaults in preferences.py."""

    biller = models.OneToOneField("billing.Biller", on_delete=models.CASCADE, related_name="notice_policy")
    channels_by_kind = models.JSONField(
        _("channels allowed per notice kind"),
        default=dict,
        blank=True,
        help_text=_(
            'For example {"bill_issued": ["email"], "past_due": ["email", "sms"]}. Empty allows every channel.'
        ),
    )
    send_time = models.TimeField(_("scheduled reminders go out at (biller's local time)"), default=dt.time(9, 0))
    quiet_hours_start = models.TimeField(_("quiet hours start"), null=True, blank=True)
    quiet_hours_end = models.TimeField(_("quiet hours end"), null=True, blank=True)
    catch_up_days = models.PositiveSmallIntegerField(
        _("late reminders still go out up to this many days late"),
        default=2,
        help_text=_("After an outage, a past-due step older than this is skipped rather than sent late."),
    )

    class Meta:
        verbose_name = _("notice policy")
        verbose_name_plural = _("notice policies")

    def __str__(self):
        return str(self.biller)


class AccountNoticeSettings(models.Model):
    """A payer's quiet hours and time zone, overriding the biller's. Optional: most accounts have none."""

    account = models.OneToOneField("billing.CustomerAccount", on_delete=models.CASCADE, related_name="notice_settings")
    quiet_hours_start = models.TimeField(_("quiet hours start"), null=True, blank=True)
    quiet_hours_end = models.TimeField(_("quiet hours end"), null=True, blank=True)
    time_zone = models.CharField(_("time zone"), max_length=64, blank=True, help_text=_("Empty: the biller's."))

    class Meta:
        verbose_name = _("account notice settings")
        verbose_name_plural = _("account notice settings")

    def __str__(self):
        return str(self.account)


class NoticePreference(models.Model):
    """An explicit choice by a payer for one kind on one channel. No row means the default (preferences.py)."""

    account = models.ForeignKey("billing.CustomerAccount", on_delete=models.CASCADE, related_name="notice_preferences")
    kind = models.CharField(_("notice"), max_length=32, choices=NoticeKind.choices)
    channel = models.CharField(_("channel"), max_length=16, choices=ChannelName.choices)
    enabled = models.BooleanField(_("send"), default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("notice preference")
        verbose_name_plural = _("notice preferences")
        constraints = [
            models.UniqueConstraint(fields=["account", "kind", "channel"], name="notice_preference_once"),
        ]

    def __str__(self):
        return f"{self.account} {self.kind}/{self.channel}: {'on' if self.enabled else 'off'}"


class SmsOptOut(models.Model):
    """A phone number that replied STOP. Carriers and Twilio keep opt-outs per number, so do we."""

    phone = models.CharField(_("phone (E.164)"), max_length=32, unique=True)
    source = models.CharField(_("how"), max_length=32, default="sms_stop")
    keyword = models.CharField(_("keyword"), max_length=32, blank=True)
    created_at = models.DateTimeField(_("opted out"), auto_now_add=True)

    class Meta:
        verbose_name = _("SMS opt-out")
        verbose_name_plural = _("SMS opt-outs")
        ordering = ["-created_at"]

    def __str__(self):
        return self.phone


class Notification(TransitionsMixin, models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped")

    # The one place that says which status changes are allowed. Sending goes back to pending for a retry, a quiet-hours
    # deferral or a reclaim after a lost worker; sent, failed and skipped are final.
    TRANSITIONS = {
        Status.PENDING: {Status.SENDING, Status.SKIPPED},
        Status.SENDING: {Status.SENT, Status.PENDING, Status.FAILED, Status.SKIPPED},
        Status.SENT: set(),
        Status.FAILED: set(),
        Status.SKIPPED: set(),
    }

    dedupe_key = models.CharField(_("key"), max_length=160, unique=True)
    biller = models.ForeignKey("billing.Biller", on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey("billing.CustomerAccount", on_delete=models.CASCADE, related_name="notifications")
    bill = models.ForeignKey("billing.Bill", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    payment = models.ForeignKey("billing.Payment", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    refund = models.ForeignKey("billing.Refund", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    # A payment plan notice is about the plan; its `bill` is the plan's oldest bill (for the pay link).
    plan = models.ForeignKey(
        "billing.PaymentPlan", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    mandate = models.ForeignKey(
        "billing.BankMandate", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(_("notice"), max_length=32, choices=NoticeKind.choices)
    channel = models.CharField(_("channel"), max_length=16, choices=ChannelName.choices)
    step = models.SmallIntegerField(_("schedule step (days from due date)"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    send_at = models.DateTimeField(_("planned for"))
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    claimed_at = models.DateTimeField(_("claimed by a sweeper"), null=True, blank=True)
    attempt_started_at = models.DateTimeField(_("attempt started"), null=True, blank=True)
    recipient = models.CharField(_("sent to"), max_length=254, blank=True)
    language = models.CharField(_("language"), max_length=8, blank=True)
    provider_id = models.CharField(_("provider id"), max_length=255, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    created_at = models.DateTimeField(_("planned"), auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-send_at", "-pk"]
        indexes = [
            # The sweeper's two queries: due pending rows, and rows stuck in sending.
            models.Index(fields=["status", "next_attempt_at"], name="notification_due"),
            models.Index(fields=["status", "claimed_at"], name="notification_claimed"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(bill__isnull=False) | Q(payment__isnull=False) | Q(refund__isnull=False)
                | Q(mandate__isnull=False),
                name="notification_is_about_something",
            ),
        ]

    def __str__(self):
        return self.dedupe_key


class DeliveryAttempt(models.Model):
    """Append-only: one row per call to a channel's provider, whatever its outcome."""

    class Outcome(models.TextChoices):
        SENT = "sent", _("Accepted by the provider")
        TRANSIENT = "transient", _("Temporary error, will retry")
        PERMANENT = "permanent", _("Refused")
        LOST = "lost", _("Worker lost; reclaimed")

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="delivery_attempts")
    number = models.PositiveSmallIntegerField(_("attempt"))
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    provider_id = models.CharField(_("provider id"), max_length=255, blank=True)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("when"), auto_now_add=True)

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery attempts")
        ordering = ["notification", "number", "pk"]

    def __str__(self):
        return f"{self.notification_id} #{self.number} {self.outcome}"
