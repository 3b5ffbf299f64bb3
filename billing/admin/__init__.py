"""The staff side of Billpay: Django admin for billers, accounts, bills, payments and their history.

The admin parses input and calls one service per action (billing/services.py); it never changes a status or an amount
itself. History models (attempts, refunds, events) are read-only here for everyone, superusers included.
"""

import datetime as dt
import importlib.util
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F, Q, Sum
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from accounts.admin import CustomerAccountLinkInline, invitation_send_action

from . import payments, selectors, services
from .errors import ApplicationError
from .models import (
    Bill,
    BillingEvent,
    BillLine,
    Biller,
    CustomerAccount,
    Dispute,
    GuestEnrollmentRequest,
    Payment,
    PaymentAllocation,
    PaymentAttempt,
    Refund,
    WebhookEvent,
)
from .money import currency_decimals, format_money, from_minor, to_minor, validate_currency

# ---------------------------------------------------------------------------------------------------------------------
# Helpers


def _money(minor: int | None, currency: str) -> str:
    if minor is None or not currency:
        return "—"
    return format_money(minor, currency)


def _biller_zone(time_zone: str):
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.get_default_timezone()


def _biller_today(time_zone: str) -> dt.date:
    """Today where the biller is: a bill due "today" in Honolulu is not overdue yet while it is tomorrow in UTC."""
    return timezone.localdate(timezone=_biller_zone(time_zone))


# Amounts typed by staff: digits, an optional point and decimals; thousands separators only in groups of three, so a
# European "12,50" is refused instead of silently becoming 1250.
_AMOUNT_RE = re.compile(r"^-?(\d+|\d{1,3}(,\d{3})+)(\.\d+)?$")


def _parse_staff_amount(raw: str, currency: str, *, allow_zero: bool) -> int:
    """A staff-typed amount in the currency's major unit ("12.50") → minor units, or a ValidationError to show."""
    text = (raw or "").strip()
    example = format_money(1250 * 10 ** max(currency_decimals(currency) - 2, 0), currency)
    if not _AMOUNT_RE.match(text):
        raise ValidationError(
            _("Enter the amount as a number, for example %(example)s."), code="invalid", params={"example": example}
        )
    try:
        minor = to_minor(text, currency, strict=True)
    except ApplicationError:
        raise ValidationError(
            _("%(currency)s amounts have at most %(places)s decimal places."),
            code="precision",
            params={"currency": currency, "places": currency_decimals(currency)},
        ) from None
    if minor < 0 or (minor == 0 and not allow_zero):
        raise ValidationError(_("The amount must be more than zero."), code="min_value")
    return minor


def _admin_link(obj, label=None):
    if obj is None:
        return "—"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label if label is not None else str(obj))


def _status_change(event: BillingEvent) -> str:
    if not (event.from_status or event.to_status):
        return ""
    return f"{event.from_status or '—'} → {event.to_status or '—'}"


class ReadOnlyAdminMixin:
    """History is append-only: nobody adds, edits or deletes it by hand, superusers included."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyTabularInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False


class HistoryInline(ReadOnlyTabularInline):
    """BillingEvent rows of a bill, payment or account (each has its own foreign key, so Django picks the right one)."""

    model = BillingEvent
    verbose_name = _("history entry")
    verbose_name_plural = _("history")
    fields = ("created_at", "actor", "kind", "change", "amount_display", "message")
    readonly_fields = fields
    ordering = ("created_at", "pk")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")

    @admin.display(description=_("from → to"))
    def change(self, obj):
        return _status_change(obj)

    @admin.display(description=_("amount"))
    def amount_display(self, obj):
        return _money(obj.amount, obj.currency)


# ---------------------------------------------------------------------------------------------------------------------
# Biller


class BillerAdminForm(forms.ModelForm):
    class Meta:
        model = Biller
        fields = "__all__"

    def clean_currency(self):
        try:
            return validate_currency(self.cleaned_data["currency"])
        except ApplicationError as error:
            raise ValidationError(_("Enter an ISO 4217 currency code such as USD, EUR or KWD.")) from error

    def clean_time_zone(self):
        value = self.cleaned_data["time_zone"].strip()
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(_("Enter a time zone such as America/Chicago or Asia/Riyadh.")) from None
        return value

    @staticmethod
    def _whole_numbers(value, label):
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValidationError(
                _("%(label)s must be a list of whole numbers, like [1, 3, 5]."), params={"label": label}
            )
        return value

    def clean_reminder_schedule(self):
        return self._whole_numbers(self.cleaned_data["reminder_schedule"], _("The reminder schedule"))

    def clean_retry_schedule(self):
        value = self._whole_numbers(self.cleaned_data["retry_schedule"], _("The retry schedule"))
        if any(v <= 0 for v in value):
            raise ValidationError(_("Retries happen one or more days after a failure."))
        return value

    def clean_tip_presets(self):
        value = self._whole_numbers(self.cleaned_data["tip_presets"], _("Tip presets"))
        if any(not 0 < v <= 100 for v in value):
            raise ValidationError(_("Tip presets are percentages between 1 and 100."))
        return value


@admin.register(Biller)
class BillerAdmin(admin.ModelAdmin):
    form = BillerAdminForm
    list_display = ("name", "slug", "currency", "time_zone", "support_email")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = (
        (None, {"fields": ("name", "slug")}),
        (_("Branding"), {"fields": ("brand_color", "tagline", "remit_address")}),
        (_("Money and time"), {"fields": ("currency", "time_zone")}),
        (_("Support contact"), {"fields": ("support_email", "support_phone")}),
        (
            _("Payments"),
            {
                "fields": (
                    "lookup_factor",
                    "minimum_payment",
                    "maximum_payment",
                    "convenience_fee_fixed",
                    "convenience_fee_basis_points",
                    "pay_link_valid_days",
                )
            },
        ),
        (_("Tips"), {"fields": ("tips_enabled", "tip_presets")}),
        (_("Reminders and retries"), {"fields": ("reminder_schedule", "retry_schedule")}),
    )

    def get_readonly_fields(self, request, obj=None):
        # Amounts are stored in the currency's minor unit: once bills exist, changing the currency would change them.
        if obj is not None and obj.bills.exists():
            return ("currency",)
        return ()


# ---------------------------------------------------------------------------------------------------------------------
# Customer accounts and offline payments


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
        self.today = _biller_today(account.biller.time_zone)
        self.fields["amount"].help_text = _("In %(currency)s. Open balance: %(owed)s.") % {
            "currency": self.currency,
            "owed": format_money(owed, self.currency),
        }
        self.fields["received_on"].initial = self.today

    def clean_amount(self):
        amount = _parse_staff_amount(self.cleaned_data["amount"], self.currency, allow_zero=False)
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
        return dt.datetime.combine(day, dt.time(12), tzinfo=_biller_zone(self.account.biller.time_zone))


class AccountBillsInline(ReadOnlyTabularInline):
    model = Bill
    verbose_name_plural = _("bills")
    fields = ("bill_link", "status", "due_date", "total_display", "balance_display")
    readonly_fields = fields
    ordering = ("-due_date", "-pk")

    @admin.display(description=_("bill number"))
    def bill_link(self, obj):
        return _admin_link(obj, obj.number)

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
    readonly_fields = ("balance", "import_batch", "created_at", "updated_at")
    inlines = (AccountBillsInline, CustomerAccountLinkInline)
    actions = (invitation_send_action,)
    fieldsets = (
        (None, {"fields": ("biller", "account_number", "holder_name", "balance")}),
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

    def has_record_payment_permission(self, request) -> bool:
        return request.user.has_perm("billing.record_offline_payment")

    def get_urls(self):
        urls = super().get_urls()
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/record-payment/",
                self.admin_site.admin_view(self.record_payment_view),
                name="%s_%s_record_payment" % info,
            ),
            *urls,
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_record_payment": self.has_record_payment_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def record_payment_view(self, request, object_id):
        if not self.has_record_payment_permission(request):
            raise PermissionDenied
        account = self.get_object(request, unquote(object_id))
        if account is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        owed = selectors.account_balance(account=account)
        form = OfflinePaymentForm(request.POST or None, account=account, owed=owed)
        if request.method == "POST" and form.is_valid():
            try:
                payment = services.payment_record_offline(
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


# ---------------------------------------------------------------------------------------------------------------------
# Bills


class DueFilter(admin.SimpleListFilter):
    """Unpaid bills by due date, measured against each biller's own today."""

    title = _("due")
    parameter_name = "due"

    OVERDUE, THIS_WEEK, LATER = "overdue", "next7", "later"

    def lookups(self, request, model_admin):
        return [
            (self.OVERDUE, _("Overdue")),
            (self.THIS_WEEK, _("Due in the next 7 days")),
            (self.LATER, _("Due later")),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value not in {self.OVERDUE, self.THIS_WEEK, self.LATER}:
            return queryset
        by_zone = Q(pk__in=[])
        for time_zone in Biller.objects.order_by().values_list("time_zone", flat=True).distinct():
            today = _biller_today(time_zone)
            week_end = today + dt.timedelta(days=7)
            if value == self.OVERDUE:
                window = Q(due_date__lt=today)
            elif value == self.THIS_WEEK:
                window = Q(due_date__gte=today, due_date__lte=week_end)
            else:
                window = Q(due_date__gt=week_end)
            by_zone |= Q(biller__time_zone=time_zone) & window
        return queryset.filter(status__in=Bill.PAYABLE_STATUSES, amount_paid__lt=F("total")).filter(by_zone)


class BillAdminForm(forms.ModelForm):
    class Meta:
        model = Bill
        fields = ("account", "number", "period_start", "period_end", "due_date")

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("period_start"), cleaned.get("period_end")
        if start and end and end < start:
            self.add_error("period_end", _("The billing period ends before it starts."))
        account = cleaned.get("account") or getattr(self.instance, "account", None)
        number = (cleaned.get("number") or "").strip()
        if "number" in cleaned:
            cleaned["number"] = number
        if account is not None and number:
            taken = Bill.objects.filter(biller_id=account.biller_id, number=number).exclude(pk=self.instance.pk)
            if taken.exists():
                self.add_error("number", _("Bill %(number)s already exists.") % {"number": number})
        return cleaned


def _bill_currency(bill: Bill) -> str:
    """The currency a bill's lines are typed in; while an unsaved bill has no account yet, the site biller's."""
    if bill.currency:
        return bill.currency
    if bill.account_id:
        return bill.account.biller.currency
    biller = selectors.biller_for_site()
    return biller.currency if biller else "USD"


class BillLineForm(forms.ModelForm):
    unit_price = forms.CharField(label=_("unit price"), max_length=32)
    tax = forms.CharField(label=_("tax"), max_length=32, required=False, initial="0")

    class Meta:
        model = BillLine
        fields = ("position", "description", "quantity")

    def __init__(self, *args, bill: Bill | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.bill = bill
        if self.instance.pk and bill is not None:
            currency = _bill_currency(bill)
            self.initial["unit_price"] = str(from_minor(self.instance.unit_amount, currency))
            self.initial["tax"] = str(from_minor(self.instance.tax_amount, currency))

    def _currency(self) -> str:
        return _bill_currency(self.bill) if self.bill is not None else "USD"

    def clean_unit_price(self):
        return _parse_staff_amount(self.cleaned_data["unit_price"], self._currency(), allow_zero=True)

    def clean_tax(self):
        return _parse_staff_amount(self.cleaned_data.get("tax") or "0", self._currency(), allow_zero=True)

    def clean(self):
        cleaned = super().clean()
        if self.errors or "description" not in cleaned:
            return cleaned
        try:
            # The same rule the import and bill_create use: amount = unit price × quantity, rounded half up.
            line = services.LineInput(
                description=cleaned["description"],
                quantity=cleaned.get("quantity") or 0,
                unit_amount=cleaned["unit_price"],
                tax_amount=cleaned["tax"],
            ).resolved()
        except ApplicationError as error:
            raise ValidationError(error.message) from None
        self.instance.unit_amount = line.unit_amount
        self.instance.amount = line.amount
        self.instance.tax_amount = line.tax_amount
        return cleaned


class BillLineFormSet(BaseInlineFormSet):
    def get_form_kwargs(self, index):
        return {**super().get_form_kwargs(index), "bill": self.instance}

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        kept = [f for f in self.forms if f.has_changed() or f.instance.pk]
        kept = [f for f in kept if not (self.can_delete and self._should_delete_form(f))]
        if not kept:
            raise ValidationError(_("A bill needs at least one line."))


class BillLineEditInline(admin.TabularInline):
    """Lines of a draft: staff type prices in the bill's currency; the amount and the totals are computed."""

    model = BillLine
    form = BillLineForm
    formset = BillLineFormSet
    fields = ("position", "description", "quantity", "unit_price", "tax", "amount_display")
    readonly_fields = ("amount_display",)
    extra = 1

    @admin.display(description=_("amount"))
    def amount_display(self, obj):
        return _money(obj.amount, obj.bill.currency) if obj.pk else "—"


class BillLineReadInline(ReadOnlyTabularInline):
    model = BillLine
    fields = ("position", "description", "quantity", "unit_display", "amount_display", "tax_display")
    readonly_fields = fields

    @admin.display(description=_("unit price"))
    def unit_display(self, obj):
        return _money(obj.unit_amount, obj.bill.currency)

    @admin.display(description=_("amount"))
    def amount_display(self, obj):
        return _money(obj.amount, obj.bill.currency)

    @admin.display(description=_("tax"))
    def tax_display(self, obj):
        return _money(obj.tax_amount, obj.bill.currency)


class BillAllocationInline(ReadOnlyTabularInline):
    model = PaymentAllocation
    verbose_name_plural = _("payments applied")
    fields = ("payment_link", "method", "received", "amount_display")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("payment", "bill")

    @admin.display(description=_("payment"))
    def payment_link(self, obj):
        return _admin_link(obj.payment)

    @admin.display(description=_("method"))
    def method(self, obj):
        return obj.payment.get_method_display()

    @admin.display(description=_("received"))
    def received(self, obj):
        return obj.payment.received_at or obj.payment.created_at

    @admin.display(description=_("amount"))
    def amount_display(self, obj):
        return _money(obj.amount, obj.payment.currency)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Kept in each bill's history."),
    )


@admin.register(Bill)
class BillAdmin(admin.ModelAdmin):
    form = BillAdminForm
    list_display = (
        "number",
        "account",
        "biller",
        "status",
        "due_date",
        "total_display",
        "paid_display",
        "balance_display",
        "pdf_link",
    )
    list_select_related = ("account", "biller")
    list_filter = ("status", "biller", DueFilter, "due_date")
    search_fields = (
        "number",
        "account__account_number",
        "account__holder_name",
        "account__email",
        "account__postal_code",
    )
    date_hierarchy = "due_date"
    autocomplete_fields = ("account",)
    actions = ("issue_bills", "void_bills", "mark_uncollectible")
    add_fieldsets = ((None, {"fields": ("account", "number", "period_start", "period_end", "due_date")}),)
    fieldsets = (
        (None, {"fields": ("account", "biller", "number", "status")}),
        (_("Dates"), {"fields": ("period_start", "period_end", "issue_date", "due_date")}),
        (
            _("Totals"),
            {
                "fields": ("subtotal_display", "tax_display", "total_display", "paid_display", "balance_display"),
                "description": _("Computed from the lines when a draft is saved."),
            },
        ),
        (_("E-bill"), {"fields": ("documents",)}),
    )
    readonly_fields = (
        "documents",
        "biller",
        "status",
        "issue_date",
        "subtotal_display",
        "tax_display",
        "total_display",
        "paid_display",
        "balance_display",
    )

    # -- display -------------------------------------------------------------------------------------------------------

    @admin.display(description=_("PDF"))
    def pdf_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("billing:staff_bill_pdf", args=[obj.pk]), _("PDF"))

    @admin.display(description=_("documents"))
    def documents(self, obj):
        if not obj.pk:
            return "—"
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">{}</a> · <a href="{}">{}</a>',
            reverse("billing:staff_bill_print", args=[obj.pk]),
            _("Printable bill"),
            reverse("billing:staff_bill_pdf", args=[obj.pk]),
            _("Download PDF"),
        )

    @admin.display(description=_("subtotal"))
    def subtotal_display(self, obj):
        return obj.money(obj.subtotal)

    @admin.display(description=_("tax"))
    def tax_display(self, obj):
        return obj.money(obj.tax)

    @admin.display(description=_("total"), ordering="total")
    def total_display(self, obj):
        return obj.money(obj.total)

    @admin.display(description=_("amount paid"), ordering="amount_paid")
    def paid_display(self, obj):
        return obj.money(obj.amount_paid)

    @admin.display(description=_("balance due"))
    def balance_display(self, obj):
        return obj.money(obj.balance_due)

    # -- forms and permissions -----------------------------------------------------------------------------------------

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        if obj.status != Bill.Status.DRAFT:  # what the payer was sent does not change
            return (*self.readonly_fields, "account", "number", "period_start", "period_end", "due_date")
        return (*self.readonly_fields, "account")

    def get_inlines(self, request, obj):
        lines = BillLineEditInline if obj is None or obj.status == Bill.Status.DRAFT else BillLineReadInline
        if obj is None:
            return (lines,)
        if obj.status != Bill.Status.DRAFT:  # a draft has no autopay charges (and its edit form posts no such formset)
            return (lines, BillAllocationInline, AutopayChargeTimelineInline, HistoryInline)
        return (lines, BillAllocationInline, HistoryInline)

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.status != Bill.Status.DRAFT:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        # Only an unsent draft may disappear; anything issued stays, with its history.
        if obj is None or obj.status != Bill.Status.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    def has_issue_permission(self, request) -> bool:
        return request.user.has_perm("billing.issue_bill")

    def has_void_permission(self, request) -> bool:
        return request.user.has_perm("billing.void_bill")

    def save_form(self, request, form, change):
        bill = super().save_form(request, form, change)
        if not change:
            bill.biller = bill.account.biller
            bill.currency = validate_currency(bill.biller.currency)
        return bill

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        bill = form.instance
        if bill.status == Bill.Status.DRAFT:
            services.bill_recalculate(bill=bill, actor=request.user, created=not change)

    # -- actions -------------------------------------------------------------------------------------------------------

    def _run_per_bill(self, request, queryset, service, success_message, **kwargs):
        """Call `service` once per bill, each in its own transaction: one refused bill neither stops nor undoes the
        others. Reports what happened to every bill."""
        done, refused = [], []
        for bill in queryset.select_related(None).order_by("pk"):
            try:
                service(bill=bill, actor=request.user, **kwargs)
            except ApplicationError as error:
                refused.append(f"{bill.number}: {error.message}")
            else:
                done.append(bill.number)
        if done:
            self.message_user(request, success_message(len(done)) % {"count": len(done), "numbers": ", ".join(done)})
        for message in refused:
            self.message_user(request, message, messages.ERROR)

    @admin.action(description=_("Issue selected bills"), permissions=["issue"])
    def issue_bills(self, request, queryset):
        if not self.has_issue_permission(request):
            raise PermissionDenied
        self._run_per_bill(
            request,
            queryset,
            services.bill_issue,
            lambda n: ngettext("Issued %(count)d bill: %(numbers)s.", "Issued %(count)d bills: %(numbers)s.", n),
        )

    def _with_reason(self, request, queryset, *, action, title, intro, service, success_message):
        """Ask for a reason on an intermediate page, then run the service per bill."""
        if not self.has_void_permission(request):
            raise PermissionDenied
        form = ReasonForm(request.POST if "confirm" in request.POST else None)
        if form.is_bound and form.is_valid():
            self._run_per_bill(request, queryset, service, success_message, reason=form.cleaned_data["reason"])
            return None  # back to the change list
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "intro": intro,
            "opts": self.opts,
            "form": form,
            "queryset": queryset,
            "bills": [(bill, bill.money(bill.total)) for bill in queryset.select_related("account")],
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/billing/bill/reason_confirmation.html", context)

    @admin.action(description=_("Void selected bills"), permissions=["void"])
    def void_bills(self, request, queryset):
        return self._with_reason(
            request,
            queryset,
            action="void_bills",
            title=_("Void bills"),
            intro=_("A void bill is cancelled for good: it is no longer owed and cannot be reopened."),
            service=services.bill_void,
            success_message=lambda n: ngettext(
                "Voided %(count)d bill: %(numbers)s.", "Voided %(count)d bills: %(numbers)s.", n
            ),
        )

    @admin.action(description=_("Mark selected bills uncollectible"), permissions=["void"])
    def mark_uncollectible(self, request, queryset):
        return self._with_reason(
            request,
            queryset,
            action="mark_uncollectible",
            title=_("Mark bills uncollectible"),
            intro=_("An uncollectible bill is written off, but a payment can still be taken on it later."),
            service=services.bill_mark_uncollectible,
            success_message=lambda n: ngettext(
                "Marked %(count)d bill uncollectible: %(numbers)s.",
                "Marked %(count)d bills uncollectible: %(numbers)s.",
                n,
            ),
        )


# ---------------------------------------------------------------------------------------------------------------------
# Payments and their history


class PaymentAllocationInline(ReadOnlyTabularInline):
    model = PaymentAllocation
    verbose_name_plural = _("applied to bills")
    fields = ("bill_link", "amount_display")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("bill", "payment")

    @admin.display(description=_("bill"))
    def bill_link(self, obj):
        return _admin_link(obj.bill, obj.bill.number)

    @admin.display(description=_("amount"))
    def amount_display(self, obj):
        return _money(obj.amount, obj.payment.currency)


class PaymentAttemptInline(ReadOnlyTabularInline):
    model = PaymentAttempt
    fields = ("created_at", "kind", "outcome", "amount_display", "decline_code", "gateway_reference", "message")
    readonly_fields = fields

    @admin.display(description=_("amount"))
    def amount_display(self, obj):
        return _money(obj.amount, obj.currency)


class RefundInline(ReadOnlyTabularInline):
    model = Refund
    fields = ("created_at", "amount_display", "status", "reason", "created_by")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")

    @admin.display(description=_("amount"))
    def amount_display(self, obj):
        return _money(obj.amount, obj.currency)



class DisputeInline(ReadOnlyTabularInline):
    model = Dispute
    fields = ("gateway_dispute_id", "status", "funds", "amount_display", "reason", "evidence_due_by", "updated_at")
    readonly_fields = fields

    @admin.display(description=_("amount"))
    def amount_display(self, obj):
        return _money(obj.amount, obj.currency)


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
        return _parse_staff_amount(self.cleaned_data["amount"], self.payment.currency, allow_zero=False)


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
    list_filter = ("status", "disputed", "channel", "method", "biller", "received_at")
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
        (_("Details"), {"fields": ("reference", "payer_email", "received_at", "recorded_by", "created_at")}),
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
        "received_at",
        "recorded_by",
        "created_at",
    )
    inlines = (PaymentAllocationInline, PaymentAttemptInline, RefundInline, DisputeInline, HistoryInline)

    def has_refund_permission(self, request) -> bool:
        return request.user.has_perm("billing.refund_payment")

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
                refund = payments.refund_create(
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
        return _admin_link(obj.account)

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj):
        return _money(obj.amount, obj.currency)

    @admin.display(description=_("fee"))
    def fee_display(self, obj):
        return _money(obj.fee_amount, obj.currency)

    @admin.display(description=_("tip"))
    def tip_display(self, obj):
        return _money(obj.tip_amount, obj.currency)

    @admin.display(description=_("total charged"))
    def total_display(self, obj):
        return _money(obj.total_charged, obj.currency)

    @admin.display(description=_("refunded"))
    def refunded_display(self, obj):
        return _money(obj.amount_refunded, obj.currency)

    @admin.display(description=_("withdrawn by disputes"))
    def disputed_display(self, obj):
        return _money(obj.amount_disputed, obj.currency)


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "payment", "kind", "outcome", "amount_display", "decline_code", "gateway_reference")
    list_select_related = ("payment",)
    list_filter = ("kind", "outcome", "created_at")
    search_fields = ("payment__confirmation_number", "gateway_reference", "decline_code", "idempotency_key")
    date_hierarchy = "created_at"

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj):
        return _money(obj.amount, obj.currency)


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
        return _money(obj.amount, obj.currency)

    @admin.action(description=_("Check with the gateway / retry"), permissions=["refund"])
    def settle_with_gateway(self, request, queryset):
        for refund in queryset.filter(status__in=Refund.HELD_STATUSES).order_by("pk"):
            try:
                refund = payments.refund_settle(refund=refund, actor=request.user)
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
    """Chargebacks as the gateway's signed events reported them (billing/disputes.py). Read-only: the gateway decides."""

    list_display = ("created_at", "payment", "gateway_dispute_id", "status", "funds", "amount_display", "reason",
                    "evidence_due_by")  # fmt: skip
    list_select_related = ("payment",)
    list_filter = ("status", "funds", "reason", "created_at")
    search_fields = ("gateway_dispute_id", "gateway_charge_id", "payment__confirmation_number",
                     "payment__account__account_number")  # fmt: skip
    date_hierarchy = "created_at"

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj):
        return _money(obj.amount, obj.currency)


@admin.register(GuestEnrollmentRequest)
class GuestEnrollmentRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Paperless/autopay choices guests made around a payment; confirmed (consumed) through the e-mailed link."""

    list_display = ("created_at", "email", "account", "payment", "paperless", "autopay", "consumed_at")
    list_select_related = ("account", "payment")
    list_filter = ("paperless", "autopay", ("consumed_at", admin.EmptyFieldListFilter))
    search_fields = ("email", "account__account_number", "payment__confirmation_number")
    date_hierarchy = "created_at"


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
        return _status_change(obj)

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj):
        return _money(obj.amount, obj.currency)


# Bill imports have their own admin module (another part of the staff side); load it when it is there.
if importlib.util.find_spec("billing.admin_imports") is not None:
    importlib.import_module("billing.admin_imports")


from . import admin_enrollments  # noqa: E402, F401  (saved cards, paperless, autopay; the paper-bills export)


# ---------------------------------------------------------------------------------------------------------------------
# Autopay charges (billing/autopay.py): the retry timeline on each bill, and a list of all charges by status

from django.utils.html import format_html_join  # noqa: E402 - appended section

from .models import AutopayCharge, AutopayChargeEvent, AutopayChargeTry  # noqa: E402


def _autopay_timeline(charge: AutopayCharge) -> str:
    """Each try (attempt, card, outcome, decline code) with its gateway calls, oldest first."""
    rows = []
    for attempt in charge.tries.select_related("payment", "payment_method").order_by("pk"):
        calls = "; ".join(
            f"{a.get_kind_display()} {a.get_outcome_display()}{f' ({a.decline_code})' if a.decline_code else ''}"
            for a in attempt.payment.attempts.order_by("pk")
        )
        rows.append(
            (
                timezone.localtime(attempt.created_at).strftime("%Y-%m-%d %H:%M"),
                attempt.attempt_number,
                attempt.get_method_role_display(),
                attempt.payment_method.summary,
                attempt.get_outcome_display(),
                f" {attempt.decline_code} [{attempt.decline_class}]" if attempt.decline_code else "",
                _money(attempt.payment.amount, attempt.payment.currency),
                reverse("admin:billing_payment_change", args=[attempt.payment_id]),
                attempt.payment.confirmation_number,
                calls or "—",
            )
        )
    if not rows:
        return "—"
    items = format_html_join("", '<li>{} · #{} {} ({}) → {}{} · {} · <a href="{}">{}</a> · {}</li>', rows)
    return format_html("<ol>{}</ol>", items)


class AutopayChargeTimelineInline(ReadOnlyTabularInline):
    model = AutopayCharge
    fk_name = "bill"
    verbose_name = _("autopay charge")
    verbose_name_plural = _("autopay retry timeline")
    fields = ("charge_link", "status", "reason", "charge_on", "attempt_number", "next_attempt_at", "last_decline_code",
              "timeline")  # fmt: skip
    readonly_fields = fields
    ordering = ("pk",)

    @admin.display(description=_("charge"))
    def charge_link(self, obj):
        return _admin_link(obj, f"#{obj.pk}")

    @admin.display(description=_("tries and gateway calls"))
    def timeline(self, obj):
        return _autopay_timeline(obj)


class AutopayChargeTryInline(ReadOnlyTabularInline):
    model = AutopayChargeTry
    fields = ("created_at", "attempt_number", "method_role", "payment_method", "payment", "outcome", "decline_code",
              "decline_class")  # fmt: skip
    readonly_fields = fields


class AutopayChargeEventInline(ReadOnlyTabularInline):
    model = AutopayChargeEvent
    fields = ("created_at", "from_status", "to_status", "message")
    readonly_fields = fields


@admin.register(AutopayCharge)
class AutopayChargeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("pk", "bill", "account", "status", "reason", "charge_on", "attempt_number", "next_attempt_at",
                    "last_method_role", "last_decline_code")  # fmt: skip
    list_filter = ("status", "reason", "last_decline_class", "charge_on")
    list_select_related = ("bill", "account")
    search_fields = ("bill__number", "account__account_number", "account__holder_name", "last_decline_code")
    date_hierarchy = "charge_on"
    readonly_fields = ("timeline",)
    inlines = (AutopayChargeTryInline, AutopayChargeEventInline)

    @admin.display(description=_("tries and gateway calls"))
    def timeline(self, obj):
        return _autopay_timeline(obj)
