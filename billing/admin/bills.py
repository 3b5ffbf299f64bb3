"""Admin for bills: drafts with their lines, the due-date filter, and the issue, void and write-off actions."""

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F, Q
from django.forms.models import BaseInlineFormSet
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from billing.bills.selectors import biller_for_site
from billing.bills.services import LineInput, bill_issue, bill_mark_uncollectible, bill_recalculate, bill_void
from billing.clock import zone_of, zone_today
from billing.errors import ApplicationError
from billing.models import Bill, BillLine, Biller, PaymentAllocation
from billing.money import from_minor, validate_currency

from .autopay import AutopayChargeTimelineInline
from .mixins import HistoryInline, ReadOnlyTabularInline, admin_link, money_display, staff_amount_parse


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
            today = zone_today(zone_of(time_zone, fallback=timezone.get_default_timezone()))
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
    biller = biller_for_site()
    return biller.currency if biller else "USD"


class BillLineForm(forms.ModelForm):
    unit_price = forms.CharField(label=_("unit price"), max_length=32)
    tax = forms.CharField(label=_("tax"), max_length=32, required=False, initial="0")

    class Meta:
        model = BillLine
        fields = ("position", "description", "quantity", "usage_unit", "meter_start", "meter_end")

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
        return staff_amount_parse(self.cleaned_data["unit_price"], self._currency(), allow_zero=True)

    def clean_tax(self):
        return staff_amount_parse(self.cleaned_data.get("tax") or "0", self._currency(), allow_zero=True)

    def clean(self):
        cleaned = super().clean()
        if self.errors or "description" not in cleaned:
            return cleaned
        try:
            # The same rule the import and bill_create use: amount = unit price × quantity, rounded half up.
            line = LineInput(
                description=cleaned["description"],
                quantity=cleaned.get("quantity") or 0,
                unit_amount=cleaned["unit_price"],
                tax_amount=cleaned["tax"],
                usage_unit=cleaned.get("usage_unit") or "",
                meter_start=cleaned.get("meter_start"),
                meter_end=cleaned.get("meter_end"),
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
    fields = (
        "position", "description", "quantity", "usage_unit", "meter_start", "meter_end", "unit_price", "tax",
        "amount_display",
    )
    readonly_fields = ("amount_display",)
    extra = 1

    @admin.display(description=_("amount"))
    def amount_display(self, obj):
        return money_display(obj.amount, obj.bill.currency) if obj.pk else "—"


class BillLineReadInline(ReadOnlyTabularInline):
    model = BillLine
    fields = (
        "position", "description", "quantity", "usage_unit", "meter_start", "meter_end", "unit_display",
        "amount_display", "tax_display",
    )
    readonly_fields = fields

    @admin.display(description=_("unit price"))
    def unit_display(self, obj):
        return money_display(obj.unit_amount, obj.bill.currency)

    @admin.display(description=_("amount"))
    def amount_display(self, obj):
        return money_display(obj.amount, obj.bill.currency)

    @admin.display(description=_("tax"))
    def tax_display(self, obj):
        return money_display(obj.tax_amount, obj.bill.currency)


class BillAllocationInline(ReadOnlyTabularInline):
    model = PaymentAllocation
    verbose_name_plural = _("payments applied")
    fields = ("payment_link", "method", "received", "amount_display")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("payment", "bill")

    @admin.display(description=_("payment"))
    def payment_link(self, obj):
        return admin_link(obj.payment)

    @admin.display(description=_("method"))
    def method(self, obj):
        return obj.payment.get_method_display()

    @admin.display(description=_("received"))
    def received(self, obj):
        return obj.payment.received_at or obj.payment.created_at

    @admin.display(description=_("amount"))
    def amount_display(self, obj):
        return money_display(obj.amount, obj.payment.currency)


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
            bill_recalculate(bill=bill, actor=request.user, created=not change)

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
            bill_issue,
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
            service=bill_void,
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
            service=bill_mark_uncollectible,
            success_message=lambda n: ngettext(
                "Marked %(count)d bill uncollectible: %(numbers)s.",
                "Marked %(count)d bills uncollectible: %(numbers)s.",
                n,
            ),
        )
