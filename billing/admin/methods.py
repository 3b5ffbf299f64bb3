"""Admin for saved payment methods, gateway customers (read-only: payers save and remove them) and direct-debit
mandates (read-only record of what the payer accepted; staff may revoke one, through the service)."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from billing.errors import ApplicationError
from billing.models import BankMandate, GatewayCustomer, Payment, PaymentMethod
from billing.payments.mandates import mandate_revoke

from .mixins import ReadOnlyAdminMixin, ReadOnlyTabularInline, admin_link, money_display


@admin.register(PaymentMethod)
class PaymentMethodAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "user", "kind", "brand", "bank_name", "last4", "expiry", "is_default", "is_backup", "created_at", "removed_at",
    )  # fmt: skip
    list_select_related = ("user",)
    list_filter = ("kind", "brand", "is_default", "is_backup", ("removed_at", admin.EmptyFieldListFilter))
    search_fields = ("user__email", "last4", "gateway_payment_method_id", "holder_name")

    @admin.display(description=_("expires"))
    def expiry(self, obj):
        return f"{obj.exp_month:02d}/{obj.exp_year}" if obj.exp_month and obj.exp_year else "—"


@admin.register(GatewayCustomer)
class GatewayCustomerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("user", "gateway_customer_id", "created_at")
    list_select_related = ("user",)
    search_fields = ("user__email", "gateway_customer_id")


class MandatePaymentInline(ReadOnlyTabularInline):
    model = Payment
    verbose_name_plural = _("debits under this mandate")
    fields = ("payment_link", "status", "total_display", "created_at", "received_at")
    readonly_fields = fields

    @admin.display(description=_("payment"))
    def payment_link(self, obj):
        return admin_link(obj, obj.confirmation_number)

    @admin.display(description=_("amount"))
    def total_display(self, obj):
        return money_display(obj.total_charged, obj.currency)


@admin.register(BankMandate)
class BankMandateAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The mandate as the payer accepted it: the exact text, when, from which IP address and browser; its status and
    references. Read-only; "Revoke" goes through the service, which stops every debit not yet sent."""

    list_display = (
        "display_reference", "account", "usage", "status", "holder_name", "bank_summary", "accepted_at", "ip",
    )  # fmt: skip
    list_select_related = ("account",)
    list_filter = ("status", "usage", "scheme", "biller", "accepted_at")
    search_fields = (
        "reference", "gateway_reference", "gateway_mandate_id", "holder_name", "holder_email",
        "account__account_number", "last4",
    )  # fmt: skip
    date_hierarchy = "accepted_at"
    fieldsets = (
        (None, {"fields": ("reference", "gateway_reference", "gateway_mandate_id", "status", "status_changed_at",
                           "usage", "scheme", "account_link", "payment_method")}),
        (_("Acceptance"), {"fields": ("accepted_at", "ip", "user_agent", "language", "user")}),
        (_("Bank account"), {"fields": ("holder_name", "holder_email", "bank_name", "bank_country", "last4",
                                        "gateway_payment_method_id")}),
        (_("Mandate text shown"), {"fields": ("creditor_name", "creditor_identifier", "mandate_text_display")}),
    )  # fmt: skip
    readonly_fields = (
        "reference", "gateway_reference", "gateway_mandate_id", "status", "status_changed_at", "usage", "scheme",
        "account_link", "payment_method", "accepted_at", "ip", "user_agent", "language", "user", "holder_name",
        "holder_email", "bank_name", "bank_country", "last4", "gateway_payment_method_id", "creditor_name",
        "creditor_identifier", "mandate_text_display",
    )  # fmt: skip
    inlines = (MandatePaymentInline,)
    actions = ("revoke",)

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("billing.refund_payment")

    @admin.display(description=_("reference"), ordering="reference")
    def display_reference(self, obj):
        return obj.display_reference

    @admin.display(description=_("bank account"))
    def bank_summary(self, obj):
        return obj.summary

    @admin.display(description=_("account"))
    def account_link(self, obj):
        return admin_link(obj.account)

    @admin.display(description=_("mandate text"))
    def mandate_text_display(self, obj):
        from django.utils.html import linebreaks

        return linebreaks(obj.mandate_text)

    @admin.action(description=_("Revoke: no further debits"), permissions=["revoke"])
    def revoke(self, request, queryset):
        for mandate in queryset.order_by("pk"):
            try:
                mandate_revoke(mandate=mandate, actor=request.user, reason="revoked by staff")
            except ApplicationError as error:
                self.message_user(request, f"{mandate}: {error.message}", messages.ERROR)
                continue
            self.message_user(request, _("Mandate %(reference)s revoked.") % {"reference": mandate.display_reference})
