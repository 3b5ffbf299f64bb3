from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotificationsConfig(AppConfig):
    """Reminders and notices on several channels: the outbox, its planner and sweepers (docs/notifications.md)."""

    name = "notifications"
    verbose_name = _("Notifications")

    def ready(self):
        # Billing sends, notifications listens (billing/signals.py): billing never imports notifications.
        from billing import signals
        from billing.insight.sources import insight_source_add

        from . import receivers
        from .insight import ReminderYield

        insight_source_add("notifications.reminders", ReminderYield())  # the staff insight page's reminder yield

        signals.payment_succeeded.connect(
            receivers.receipt_on_payment_succeeded, dispatch_uid="notifications.receipt_on_payment_succeeded"
        )
        signals.payments_succeeded.connect(
            receivers.receipts_on_payments_succeeded, dispatch_uid="notifications.receipts_on_payments_succeeded"
        )
        signals.refund_issued.connect(
            receivers.refund_notice_on_refund_issued, dispatch_uid="notifications.refund_notice_on_refund_issued"
        )
        signals.dispute_recorded.connect(
            receivers.staff_mail_on_dispute_recorded, dispatch_uid="notifications.staff_mail_on_dispute_recorded"
        )
        signals.mandate_accepted.connect(
            receivers.mandate_confirmation_on_accepted, dispatch_uid="notifications.mandate_confirmation_on_accepted"
        )
        signals.bank_debit_returned.connect(
            receivers.payer_told_on_bank_debit_returned, dispatch_uid="notifications.payer_told_on_bank_debit_returned"
        )
        signals.autopay_notice_wanted.connect(
            receivers.autopay_notice_on_wanted, dispatch_uid="notifications.autopay_notice_on_wanted"
        )
        signals.plan_notice_wanted.connect(
            receivers.plan_notice_on_wanted, dispatch_uid="notifications.plan_notice_on_wanted"
        )
