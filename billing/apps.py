from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = _("Billing")

    def ready(self):
        # Billing's own reactions to its signals (billing/signals.py). Connected here, before notifications' (the
        # INSTALLED_APPS order), so a guest's enrolment ticks are recorded before the receipt goes out.
        from django.db.models import Field, ForeignObject
        from django.db.models.signals import post_delete, post_migrate, post_save

        from .lookups import AnyOf, InConstants

        Field.register_lookup(AnyOf)  # `__any_of`: `__in` with the values as one array on PostgreSQL
        ForeignObject.register_lookup(AnyOf)  # a foreign key's ids (`account_id__any_of`), not model instances
        Field.register_lookup(InConstants)  # `__in_constants`: `__in` with a few plain words written into the SQL

        from .autopay import receivers as autopay_receivers
        from .bills import receivers as bills_receivers
        from .models import Biller, PlanRules
        from .enrolment import receivers as enrolment_receivers
        from .payments import attempts as payment_attempts
        from .payments import bank_debits
        from .payments import receivers as payment_receivers
        from .plans import receivers as plans_receivers
        from .signals import (
            bank_debit_returned, bill_paid, bills_issued, notice_context_wanted, payment_succeeded, payments_succeeded,
        )

        bill_paid.connect(
            autopay_receivers.autopay_stop_on_bill_paid, dispatch_uid="billing.autopay.autopay_stop_on_bill_paid"
        )
        bill_paid.connect(
            plans_receivers.plans_progress_on_bill_paid, dispatch_uid="billing.plans.plans_progress_on_bill_paid"
        )
        notice_context_wanted.connect(
            autopay_receivers.autopay_notice_context_give, dispatch_uid="billing.autopay.autopay_notice_context_give"
        )
        notice_context_wanted.connect(
            plans_receivers.plans_notice_context_give, dispatch_uid="billing.plans.plans_notice_context_give"
        )
        bank_debit_returned.connect(
            autopay_receivers.autopay_dunning_on_bank_debit_returned,
            dispatch_uid="billing.autopay.autopay_dunning_on_bank_debit_returned",
        )
        notice_context_wanted.connect(
            bank_debits.bank_debit_notice_context_give, dispatch_uid="billing.payments.bank_debit_notice_context_give"
        )
        payment_succeeded.connect(
            enrolment_receivers.guest_choices_on_payment_succeeded,
            dispatch_uid="billing.enrolment.guest_choices_on_payment_succeeded",
        )
        payments_succeeded.connect(
            enrolment_receivers.guest_choices_on_payments_succeeded,
            dispatch_uid="billing.enrolment.guest_choices_on_payments_succeeded",
        )
        bills_issued.connect(
            payment_receivers.credit_apply_on_bills_issued,
            dispatch_uid="billing.payments.credit_apply_on_bills_issued",
        )
        # A migrated or flushed database may be a new one, with its own key for the gateway's idempotency keys: made
        # then, once (sender: this app), rather than by two processes' first charges at once.
        post_migrate.connect(
            payment_attempts.install_key_forget, sender=self, dispatch_uid="billing.payments.install_key_forget"
        )
        # The cached biller of every page (billing/bills/selectors.py) is dropped when any biller changes.
        forget = bills_receivers.biller_cache_forget_on_change
        post_save.connect(forget, sender=Biller, dispatch_uid="billing.bills.biller_cache_forget_on_save")
        post_delete.connect(forget, sender=Biller, dispatch_uid="billing.bills.biller_cache_forget_on_delete")
        post_save.connect(forget, sender=PlanRules, dispatch_uid="billing.bills.biller_cache_forget_on_rules_save")
        post_delete.connect(forget, sender=PlanRules, dispatch_uid="billing.bills.biller_cache_forget_on_rules_delete")
