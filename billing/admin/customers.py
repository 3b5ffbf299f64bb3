"""Admin for customer accounts, with their bills and the staff form that records an offline payment."""

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F, Q, Sum
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.bills.selectors import account_balance
from billing.clock import biller_today, biller_zone
from billing.errors import ApplicationError
from billing.models import Bill, CustomerAccount, Payment
from billing.money import format_money
from billing.payments.credit import account_credit_refund
from billing.payments.offline import payment_record_offline

from .mixins import ReadOnlyTabularInline, admin_link, staff_amount_parse


class OfflinePaymentForm(forms.Form):
    amount = forms.CharField(label=_("Amount"), max_length=32)
    method = forms.ChoiceField(
        label=_("Method"),
        choices=[
            (Payment.Method.CASH, Payment.Method.CASH.label),
            (Payment.Method.CHEQUE, Payment.Method.CHEQUE.label),
            (Payment.Method.BANK_TRANSFER, Payment.Method.BANK_TRANSFER.label),
        ],
    )
    reference = forms.CharField(
        label=_("Reference"),
        max_length=100,
        required=False,
        help_text=_("The cheque number, or the bank transfer or receipt reference."),
    )
    received_on = forms.DateField(label=_("Received on"), widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, account: CustomerAccount, owed: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.account = account
        self.owed = owed
        self.currency = account.biller.currency
        # Staff forms fall back to the server's zone when the biller's zone name is unknown.
        self.today = biller_today(account.biller, fallback=timezone.get_default_timezone())
        self.fields["amount"].help_text = _("In %(currency)s. Open balance: %(owed)s.") % {
            "currency": self.currency,
            "owed": format_money(owed, self.currency),
        }
        self.fields["received_on"].initial = self.today

    def clean_amount(self):
        amount = staff_amount_parse(self.cleaned_data["amount"], self.currency, allow_zero=False)
        if amount > self.owed:
            raise ValidationError(
                _("%(amount)s is more than the %(owed)s owed on this account."),
                code="more_than_owed",
                params={"amount": format_money(amount, self.currency), "owed": format_money(self.owed, self.currency)},
            )
        return amount

    def clean_received_on(self):
        value = self.cleaned_data["received_on"]
        if value > self.today:
            raise ValidationError(_("The received date cannot be in the future."))
        return value

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("method") == Payment.Method.CHEQUE and not cleaned.get("reference", "").strip():
            self.add_error("reference", _("Enter the cheque number."))
        return cleaned

    def received_at(self) -> dt.datetime:
        day = self.cleaned_data["received_on"]
        if day == self.today:
            return timezone.now()
        # An earlier day: noon where the biller is, so the date reads the same in every report.
        return dt.datetime.combine(day, dt.time(12), tzinfo=biller_zone(self.account.biller, fallback=timezone.get_default_timezone())
        )


class AccountBillsInline(ReadOnlyTabularInline):
    model = Bill
    verbose_name_plural = _("bills")
    fields = ("bill_link", "status", "due_date", "total_display", "balance_display")
    readonly_fields = fields
    ordering = ("-due_date", "-pk")

    @admin.display(description=_("bill number"))
    def bill_link(self, obj):
        return admin_link(obj, obj.number)

    @admin.display(description=_("total"))
    def total_display(self, obj):
        return obj.money(obj.total)

    @admin.display(description=_("balance due"))
    def balance_display(self, obj):
        return obj.money(obj.balance_due)


@admin.register(CustomerAccount)
class CustomerAccountAdmin(admin.ModelAdmin):
    list_display = ("account_number", "holder_name", "biller", "postal_code", "email", "balance")
    list_select_related = ("biller",)
    list_filter = ("biller", "email_notices", "sms_notices")
    search_fields = ("account_number", "holder_name", "email", "postal_code")
    readonly_fields = ("balance", "credit_held", "bank_reference", "import_batch", "created_at", "updated_at")
    # accounts/admin.py adds the portal-login inline and the invitation action (billing never imports accounts);
    # billing/admin/enrolment.py adds the paper-bills export.
    inlines = (AccountBillsInline,)
    actions = ()
    fieldsets = (
        (None, {"fields": ("biller", "account_number", "holder_name", "balance", "credit_held", "bank_reference")}),
        (
            _("Service address"),
            {"fields": ("address_line1", "address_line2", "city", "region", "postal_code", "country")},
        ),
        (_("Contact"), {"fields": ("email", "phone", "language", "email_notices", "sms_notices")}),
        (_("Record"), {"fields": ("import_batch", "created_at", "updated_at")}),
    )

    def get_queryset(self, request):
        owed = Sum(
            F("bills__total") - F("bills__amount_paid"),
            filter=Q(bills__status__in=Bill.PAYABLE_STATUSES),
            default=0,
        )
        return super().get_queryset(request).annotate(open_balance=owed)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:  # the biller and number identify the account on every bill and payment already sent
            return (*self.readonly_fields, "biller", "account_number")
        return self.readonly_fields

    @admin.display(description=_("open balance"), ordering="open_balance")
    def balance(self, obj):
        if obj.pk is None:
            return "—"
        return format_money(getattr(obj, "open_balance", 0) or 0, obj.biller.currency)

    @admin.display(description=_("credit held"))
    def credit_held(self, obj):
        if obj.pk is None:
            return "—"
        return format_money(obj.credit_balance, obj.biller.currency)

    @admin.display(description=_("bank transfer reference"))
    def bank_reference(self, obj):
        return obj.bank_reference_display if obj.pk else "—"

    def has_record_payment_permission(self, request) -> bool:
        return request.user.has_perm("billing.record_offline_payment")

    def has_credit_refund_permission(self, request) -> bool:
        return request.user.has_perm("billing.refund_payment")

    def get_urls(self):
        urls = super().get_urls()
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/record-payment/",
                self.admin_site.admin_view(self.record_payment_view),
                name="%s_%s_record_payment" % info,
            ),
            path(
                "<path:object_id>/credit-refund/",
                self.admin_site.admin_view(self.credit_refund_view),
                name="%s_%s_credit_refund" % info,
            ),
            *urls,
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_record_payment": self.has_record_payment_permission(request),
            "can_refund_credit": self.has_credit_refund_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def record_payment_view(self, request, object_id):
        if not self.has_record_payment_permission(request):
            raise PermissionDenied
        account = self.get_object(request, unquote(object_id))
        if account is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        owed = account_balance(account=account)
        form = OfflinePaymentForm(request.POST or None, account=account, owed=owed)
        if request.method == "POST" and form.is_valid():
            try:
                payment = payment_record_offline(
                    account=account,
                    amount=form.cleaned_data["amount"],
                    method=form.cleaned_data["method"],
                    reference=form.cleaned_data["reference"],
                    received_at=form.received_at(),
                    actor=request.user,
                )
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(
                    request,
                    _("Recorded payment %(number)s of %(amount)s.")
                    % {"number": payment.confirmation_number, "amount": format_money(payment.amount, payment.currency)},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:billing_customeraccount_change", args=[account.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Record an offline payment"),
            "subtitle": str(account),
            "opts": self.opts,
            "original": account,
            "form": form,
            "summary_label": _("Open balance"),
            "summary_value": format_money(owed, account.biller.currency),
            "submit_label": _("Record payment"),
        }
        return TemplateResponse(request, "admin/billing/money_action_form.html", context)

    def credit_refund_view(self, request, object_id):
        """Staff sent held credit back to the payer by bank: record it (billing/payments/credit.py)."""
        if not self.has_credit_refund_permission(request):
            raise PermissionDenied
        account = self.get_object(request, unquote(object_id))
        if account is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        currency = account.biller.currency
        form = CreditRefundForm(request.POST or None, currency=currency, credit=account.credit_balance)
        if request.method == "POST" and form.is_valid():
            try:
                account_credit_refund(
                    account=account, amount=form.cleaned_data["amount"], reference=form.cleaned_data["reference"],
                    actor=request.user,
                )  # fmt: skip
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(request, _("The credit paid back is recorded."), messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:billing_customeraccount_change", args=[account.pk]))
        context = {
            **self.admin_site.each_context(request), "title": _("Pay held credit back"), "subtitle": str(account),
            "opts": self.opts, "original": account, "form": form, "summary_label": _("Credit held"),
            "summary_value": format_money(account.credit_balance, currency), "submit_label": _("Record the refund"),
        }  # fmt: skip
        return TemplateResponse(request, "admin/billing/money_action_form.html", context)


class CreditRefundForm(forms.Form):
    amount = forms.CharField(label=_("Amount"), max_length=32)
    reference = forms.CharField(
        label=_("Reference"), max_length=100, help_text=_("The reference of the transfer that sent the money back.")
    )

    def __init__(self, *args, currency: str, credit: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.currency, self.credit = currency, credit
        self.fields["amount"].help_text = _("In %(currency)s. Credit held: %(credit)s.") % {
            "currency": currency, "credit": format_money(credit, currency)
        }

    def clean_amount(self):
        amount = staff_amount_parse(self.cleaned_data["amount"], self.currency, allow_zero=False)
        if amount > self.credit:
            raise ValidationError(_("That is more than the credit held."))
        return amount
