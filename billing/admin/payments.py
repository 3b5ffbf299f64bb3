"""Admin for payments and their history: allocations, gateway attempts, refunds (with the staff refund form),
disputes, the raw webhook events and the billing event log."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from billing.errors import ApplicationError
from billing.models import BillingEvent, Dispute, Payment, PaymentAllocation, PaymentAttempt, Refund, WebhookEvent
from billing.money import format_money, from_minor
from billing.payments.refunds import refund_create, refund_settle

from .mixins import (
    HistoryInline,
    ReadOnlyAdminMixin,
    ReadOnlyTabularInline,
    admin_link,
    money_display,
    staff_amount_parse,
    status_change_display,
)


class PaymentAllocationInline(ReadOnlyTabularInline):
    model = PaymentAllocation
    verbose_name_plural = _("applied to bills")
    fields = ("bill_link", "amount_display")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("bill", "payment")

    @admin.display(description=_("bill"))
    def bill_link(self, obj):
        return admin_link(obj.bill, obj.bill.number)

    @admin.display(description=_("amount"))
    def amount_display(self, obj):
        return money_display(obj.amount, obj.payment.currency)


class PaymentAttemptInline(ReadOnlyTabularInline):
    model = PaymentAttempt
    fields = ("created_at", "kind", "outcome", "amount_display", "decline_code", "gateway_reference", "message")
    readonly_fields = fields

    @admin.display(description=_("amount"))
    def amount_display(self, obj):
        return money_display(obj.amount, obj.currency)


class RefundInline(ReadOnlyTabularInline):
    model = Refund
    fields = ("created_at", "amount_display", "status", "reason", "created_by")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")

    @admin.display(description=_("amount"))
    def amount_display(self, obj):
        return money_display(obj.amount, obj.currency)


class DisputeInline(ReadOnlyTabularInline):
    model = Dispute
    fields = ("gateway_dispute_id", "status", "funds", "amount_display", "reason", "evidence_due_by", "updated_at")
    readonly_fields = fields

    @admin.display(description=_("amount"))
    def amount_display(self, obj):
        return money_display(obj.amount, obj.currency)


class RefundForm(forms.Form):
    amount = forms.CharField(label=_("Amount to refund"), max_length=32)
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, payment: Payment, **kwargs):
        super().__init__(*args, **kwargs)
        self.payment = payment
        self.fields["amount"].help_text = _("In %(currency)s. At most %(refundable)s.") % {
            "currency": payment.currency,
            "refundable": format_money(payment.refundable, payment.currency),
        }
        self.fields["amount"].initial = from_minor(payment.refundable, payment.currency)
        self.fields["reason"].help_text = _("Kept in the payment's history and sent to the payer.")

    def clean_amount(self):
        # The cap is checked again by the service under the payment's row lock; this is only the early, friendly check.
        return staff_amount_parse(self.cleaned_data["amount"], self.payment.currency, allow_zero=False)


class BankDebitFilter(admin.SimpleListFilter):
    """Bank debits in flight (processing, counted on the bills) and the ones the bank returned."""

    title = _("bank debit")
    parameter_name = "bank_debit"

    def lookups(self, request, model_admin):
        return (("in_flight", _("In flight (processing)")), ("returned", _("Returned by the bank")))

    def queryset(self, request, queryset):
        debits = queryset.filter(method__in=Payment.BANK_DEBIT_METHODS)
        if self.value() == "in_flight":
            return debits.filter(status=Payment.Status.PROCESSING)
        if self.value() == "returned":
            return debits.filter(status=Payment.Status.FAILED, applied_at__isnull=False)
        return queryset


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = (
        "confirmation_number",
        "account",
        "channel",
        "method",
        "status",
        "amount_display",
        "fee_display",
        "tip_display",
        "refunded_display",
        "disputed",
        "received_at",
    )
    list_select_related = ("account", "biller")
    list_filter = ("status", "disputed", "channel", "method", BankDebitFilter, "biller", "received_at")
    search_fields = (
        "confirmation_number",
        "reference",
        "payer_email",
        "account__account_number",
        "account__holder_name",
        "account__email",
        "account__postal_code",
    )
    date_hierarchy = "created_at"
    fieldsets = (
        (None, {"fields": ("confirmation_number", "biller", "account_link", "status", "channel", "method")}),
        (
            _("Money"),
            {"fields": ("amount_display", "fee_display", "tip_display", "total_display", "refunded_display", "disputed",
                        "disputed_display")},
        ),
        (_("Details"), {"fields": ("reference", "payer_email", "payment_method_summary", "mandate_link",
                                   "received_at", "applied_at", "recorded_by", "created_at")}),
    )
    readonly_fields = (
        "confirmation_number",
        "biller",
        "account_link",
        "status",
        "channel",
        "method",
        "amount_display",
        "fee_display",
        "tip_display",
        "total_display",
        "refunded_display",
        "disputed",
        "disputed_display",
        "reference",
        "payer_email",
        "payment_method_summary",
        "mandate_link",
        "received_at",
        "applied_at",
        "recorded_by",
        "created_at",
    )
    inlines = (PaymentAllocationInline, PaymentAttemptInline, RefundInline, DisputeInline, HistoryInline)

    def has_refund_permission(self, request) -> bool:
        return request.user.has_perm("billing.refund_payment")

    @admin.display(description=_("mandate"))
    def mandate_link(self, obj):
        return admin_link(obj.mandate, obj.mandate.display_reference) if obj.mandate_id else "—"

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/refund/",
                self.admin_site.admin_view(self.refund_view),
                name="%s_%s_refund" % info,
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_refund": self.has_refund_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def refund_view(self, request, object_id):
        if not self.has_refund_permission(request):
            raise PermissionDenied
        payment = self.get_object(request, unquote(object_id))
        if payment is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        form = RefundForm(request.POST or None, payment=payment)
        if request.method == "POST" and form.is_valid():
            try:
                refund = refund_create(
                    payment=payment,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                )
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                level = messages.SUCCESS if refund.status == Refund.Status.SUCCEEDED else messages.WARNING
                self.message_user(
                    request,
                    _("Refund of %(amount)s: %(status)s.")
                    % {"amount": format_money(refund.amount, refund.currency), "status": refund.get_status_display()},
                    level,
                )
                return HttpResponseRedirect(reverse("admin:billing_payment_change", args=[payment.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Refund a payment"),
            "subtitle": str(payment),
            "opts": self.opts,
            "original": payment,
            "form": form,
            "summary_label": _("Can still be refunded"),
            "summary_value": format_money(payment.refundable, payment.currency),
            "submit_label": _("Refund"),
        }
        return TemplateResponse(request, "admin/billing/money_action_form.html", context)

    def has_add_permission(self, request):
        return False  # offline payments are recorded from the customer account page; online ones by the payer

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("account"))
    def account_link(self, obj):
        return admin_link(obj.account)

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj):
        return money_display(obj.amount, obj.currency)

    @admin.display(description=_("fee"))
    def fee_display(self, obj):
        return money_display(obj.fee_amount, obj.currency)

    @admin.display(description=_("tip"))
    def tip_display(self, obj):
        return money_display(obj.tip_amount, obj.currency)

    @admin.display(description=_("total charged"))
    def total_display(self, obj):
        return money_display(obj.total_charged, obj.currency)

    @admin.display(description=_("refunded"))
    def refunded_display(self, obj):
        return money_display(obj.amount_refunded, obj.currency)

    @admin.display(description=_("withdrawn by disputes"))
    def disputed_display(self, obj):
        return money_display(obj.amount_disputed, obj.currency)


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "payment", "kind", "outcome", "amount_display", "decline_code", "gateway_reference")
    list_select_related = ("payment",)
    list_filter = ("kind", "outcome", "created_at")
    search_fields = ("payment__confirmation_number", "gateway_reference", "decline_code", "idempotency_key")
    date_hierarchy = "created_at"

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj):
        return money_display(obj.amount, obj.currency)


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Refunds as history. One pending confirmation (the gateway's answer was lost) is settled only through
    `refund_settle`: it asks the gateway first and sends again, with the same key, only if the refund is not there."""

    list_display = ("created_at", "payment", "kind", "amount_display", "status", "reason", "created_by",
                    "gateway_refund_id")  # fmt: skip
    list_select_related = ("payment", "created_by")
    list_filter = ("status", "kind", "created_at")
    search_fields = ("payment__confirmation_number", "gateway_refund_id", "reason", "payment__account__account_number")
    date_hierarchy = "created_at"
    actions = ("settle_with_gateway",)

    def has_refund_permission(self, request) -> bool:
        return request.user.has_perm("billing.refund_payment")

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj):
        return money_display(obj.amount, obj.currency)

    @admin.action(description=_("Check with the gateway / retry"), permissions=["refund"])
    def settle_with_gateway(self, request, queryset):
        for refund in queryset.filter(status__in=Refund.HELD_STATUSES).order_by("pk"):
            try:
                refund = refund_settle(refund=refund, actor=request.user)
            except ApplicationError as error:
                self.message_user(request, f"{refund.payment}: {error.message}", messages.ERROR)
                continue
            level = messages.SUCCESS if refund.status == Refund.Status.SUCCEEDED else messages.WARNING
            self.message_user(
                request,
                _("Refund of %(amount)s on %(payment)s: %(status)s.")
                % {"amount": format_money(refund.amount, refund.currency), "payment": refund.payment,
                   "status": refund.get_status_display()},  # fmt: skip
                level,
            )


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Chargebacks as the gateway's signed events reported them (billing/payments/disputes.py). Read-only: the gateway decides."""

    list_display = ("created_at", "payment", "gateway_dispute_id", "status", "funds", "amount_display", "reason",
                    "evidence_due_by")  # fmt: skip
    list_select_related = ("payment",)
    list_filter = ("status", "funds", "reason", "created_at")
    search_fields = ("gateway_dispute_id", "gateway_charge_id", "payment__confirmation_number",
                     "payment__account__account_number")  # fmt: skip
    date_hierarchy = "created_at"

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj):
        return money_display(obj.amount, obj.currency)


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """What the gateway told us, stored raw before processing. An event with an error and no processed time was
    answered 500 and will be processed again when the gateway redelivers it; the janitor settles its payment anyway."""

    list_display = ("received_at", "type", "event_id", "livemode", "api_version", "processed_at", "error")
    list_filter = ("type", ("processed_at", admin.EmptyFieldListFilter), "received_at")
    search_fields = ("event_id", "type")
    date_hierarchy = "received_at"


@admin.register(BillingEvent)
class BillingEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "actor", "kind", "bill", "payment", "account", "change", "amount_display", "message")
    list_select_related = ("actor", "bill", "payment", "account")
    list_filter = ("kind", "created_at")
    search_fields = (
        "bill__number",
        "payment__confirmation_number",
        "account__account_number",
        "account__holder_name",
        "actor__email",
        "message",
    )
    date_hierarchy = "created_at"

    @admin.display(description=_("from → to"))
    def change(self, obj):
        return status_change_display(obj)

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj):
        return money_display(obj.amount, obj.currency)
