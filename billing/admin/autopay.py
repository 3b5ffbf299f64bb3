"""Admin for autopay: enrolments (read-only: payers enrol, with their consent on record), and charges with their
retry timeline, shown on each bill and as a list of all charges by status."""

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from billing.models import AutopayCharge, AutopayChargeEvent, AutopayChargeTry, AutopayEnrollment

from .enrolment import EnrollmentEventInline
from .mixins import ReadOnlyAdminMixin, ReadOnlyTabularInline, admin_link, money_display


@admin.register(AutopayEnrollment)
class AutopayEnrollmentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("account", "status", "user", "payment_method_summary", "charge_rule", "days_before", "consented_at")
    list_select_related = ("account", "user")
    list_filter = ("status", "charge_rule")
    search_fields = ("account__account_number", "account__holder_name", "user__email")
    date_hierarchy = "consented_at"
    inlines = (EnrollmentEventInline,)


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
                money_display(attempt.payment.amount, attempt.payment.currency),
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
        return admin_link(obj, f"#{obj.pk}")

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
