"""Admin for payment plans: the biller's rules (an inline on the biller), the Plans list with status and filters, staff
arranging a plan for an account, and the cancel and reschedule actions. Every change goes through billing.plans'
services; the plan's instalments and history are read-only."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from billing.errors import ApplicationError
from billing.models import CustomerAccount, Frequency, PaymentPlan, PaymentPlanEvent, PlanInstalment, PlanRules
from billing.plans.services import plan_cancel, plan_propose_by_staff, plan_reschedule

from .mixins import ReadOnlyTabularInline, money_display, staff_amount_parse


class PlanRulesInline(admin.StackedInline):
    model = PlanRules
    can_delete = False
    extra = 0
    max_num = 1
    verbose_name_plural = _("payment plan rules")
    fieldsets = (
        (None, {"fields": ("enabled", "self_service")}),
        (_("Which balances qualify"), {"fields": ("min_balance", "max_balance", "min_days_overdue")}),
        (_("Instalments"), {"fields": ("min_instalments", "max_instalments", "allow_weekly", "allow_biweekly",
                                       "allow_monthly", "min_instalment", "remainder_on")}),  # fmt: skip
        (_("Down payment"), {"fields": ("down_payment", "down_payment_percent", "down_payment_fixed")}),
        (_("Limits"), {"fields": ("max_active_plans", "grace_days")}),
    )


class PlanInstalmentInline(ReadOnlyTabularInline):
    model = PlanInstalment
    fields = ("number", "due_date", "amount_display", "status", "paid_at")
    readonly_fields = fields

    @admin.display(description=_("amount"))
    def amount_display(self, obj):
        return money_display(obj.amount, obj.plan.currency)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("plan")


class PaymentPlanEventInline(ReadOnlyTabularInline):
    model = PaymentPlanEvent
    verbose_name_plural = _("history")
    fields = ("created_at", "actor", "from_status", "to_status", "message")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")


def _schedule_choices():
    return [(f.value, f.label) for f in Frequency]


class ArrangeForm(forms.Form):
    account_number = forms.CharField(label=_("Account number"), max_length=40)
    frequency = forms.ChoiceField(label=_("Frequency"), choices=_schedule_choices)
    count = forms.IntegerField(label=_("Instalments after the down payment"), min_value=1, max_value=24)
    down_payment = forms.CharField(
        label=_("Down payment"), required=False, help_text=_("Empty: the biller's rule. Only outside the rules.")
    )
    outside_rules = forms.BooleanField(
        label=_("Outside the payer rules"), required=False,
        help_text=_("Allow a schedule, balance or down payment the payer could not choose themselves."),
    )  # fmt: skip

    def __init__(self, *args, biller_accounts, **kwargs):
        super().__init__(*args, **kwargs)
        self.biller_accounts = biller_accounts

    def clean(self):
        data = super().clean()
        number = (data.get("account_number") or "").strip()
        account = self.biller_accounts.select_related("biller").filter(account_number=number).first()
        if number and account is None:
            self.add_error("account_number", _("No account with that number."))
        data["account"] = account
        raw = (data.get("down_payment") or "").strip()
        data["down_payment_minor"] = None
        if raw and account is not None:
            try:
                data["down_payment_minor"] = staff_amount_parse(raw, account.biller.currency, allow_zero=True)
            except forms.ValidationError as error:
                self.add_error("down_payment", error)
        return data


class RescheduleForm(forms.Form):
    frequency = forms.ChoiceField(label=_("Frequency"), choices=_schedule_choices)
    count = forms.IntegerField(label=_("Instalments for what is left"), min_value=1, max_value=24)
    start = forms.DateField(label=_("Counting from"), required=False, help_text=_("Empty: today. YYYY-MM-DD."))


@admin.register(PaymentPlan)
class PaymentPlanAdmin(admin.ModelAdmin):
    list_display = ("account", "status", "origin", "total_display", "frequency", "instalment_count", "pays_by_hand",
                    "outside_rules", "created_at")  # fmt: skip
    list_select_related = ("account",)
    list_filter = ("status", "origin", "frequency", "pays_by_hand", "outside_rules", "biller")
    search_fields = ("account__account_number", "account__holder_name", "account__email")
    date_hierarchy = "created_at"
    inlines = (PlanInstalmentInline, PaymentPlanEventInline)
    actions = ("cancel_plans",)
    exclude = ("agreed_schedule",)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "agreed_schedule"] + ["agreed_schedule_display"]

    @admin.display(description=_("balance covered"), ordering="total")
    def total_display(self, obj):
        return money_display(obj.total, obj.currency)

    @admin.display(description=_("schedule agreed"))
    def agreed_schedule_display(self, obj):
        return "; ".join(f"#{i['number']} {i['due_date']} {money_display(i['amount'], obj.currency)}"
                         for i in obj.agreed_schedule or []) or "—"  # fmt: skip

    def has_add_permission(self, request):
        return False  # staff arrange plans with "Arrange a plan" (the service checks the account and the rules)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_arrange_permission(self, request) -> bool:
        return request.user.has_perm("billing.arrange_payment_plan")

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("arrange/", self.admin_site.admin_view(self.arrange_view), name="%s_%s_arrange" % info),
            path("<path:object_id>/reschedule/", self.admin_site.admin_view(self.reschedule_view),
                 name="%s_%s_reschedule" % info),  # fmt: skip
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra = {"arrange_url": reverse("admin:billing_paymentplan_arrange")} if self.has_arrange_permission(request) else {}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    @admin.action(description=_("Cancel the selected plans"), permissions=["arrange"])
    def cancel_plans(self, request, queryset):
        done = 0
        for plan in queryset.filter(status__in=PaymentPlan.OPEN_STATUSES).order_by("pk"):
            try:
                plan_cancel(plan=plan, actor=request.user, reason="by staff")
            except ApplicationError as error:
                self.message_user(request, f"{plan}: {error.message}", messages.ERROR)
            else:
                done += 1
        self.message_user(request, _("%(count)d plan(s) cancelled.") % {"count": done}, messages.SUCCESS)

    def _form_page(self, request, *, form, title, original=None, submit):
        context = {
            **self.admin_site.each_context(request), "title": title, "opts": self.opts, "original": original,
            "form": form, "submit_label": submit,
        }  # fmt: skip
        return TemplateResponse(request, "admin/billing/paymentplan/action_form.html", context)

    def arrange_view(self, request):
        if not self.has_arrange_permission(request):
            raise PermissionDenied
        form = ArrangeForm(request.POST or None, biller_accounts=CustomerAccount.objects.all())
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                plan = plan_propose_by_staff(
                    account=data["account"], schedule_key=f"{data['frequency']}-{data['count']}", actor=request.user,
                    outside_rules=data["outside_rules"],
                    down_payment=data["down_payment_minor"] if data["outside_rules"] else None,
                )  # fmt: skip
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(request, _("Plan proposed; the payer was e-mailed the schedule and a link to accept."))
                return HttpResponseRedirect(reverse("admin:billing_paymentplan_change", args=[plan.pk]))
        return self._form_page(request, form=form, title=_("Arrange a payment plan"), submit=_("Propose the plan"))

    def reschedule_view(self, request, object_id):
        if not self.has_arrange_permission(request):
            raise PermissionDenied
        plan = self.get_object(request, unquote(object_id))
        if plan is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        form = RescheduleForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                plan_reschedule(plan=plan, actor=request.user, schedule_key=f"{data['frequency']}-{data['count']}",
                                start=data["start"])  # fmt: skip
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(request, _("Plan rescheduled."))
                return HttpResponseRedirect(reverse("admin:billing_paymentplan_change", args=[plan.pk]))
        return self._form_page(request, form=form, title=_("Reschedule a payment plan"), original=plan,
                               submit=_("Reschedule"))  # fmt: skip

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"can_arrange": self.has_arrange_permission(request)}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})
