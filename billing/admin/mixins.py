"""What the admin modules share: money and link display, staff-typed amounts, the read-only history mixins and
inlines. (The CSV cell guard is billing/csvsafe.py.)"""

import re

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _


from billing.errors import ApplicationError
from billing.models import BillingEvent
from billing.money import currency_decimals, format_money, to_minor


def money_display(minor: int | None, currency: str) -> str:
    if minor is None or not currency:
        return "—"
    return format_money(minor, currency)


# Amounts typed by staff: digits, an optional point and decimals; thousands separators only in groups of three, so a
# European "12,50" is refused instead of silently becoming 1250.
_AMOUNT_RE = re.compile(r"^-?(\d+|\d{1,3}(,\d{3})+)(\.\d+)?$")


def staff_amount_parse(raw: str, currency: str, *, allow_zero: bool) -> int:
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


def admin_link(obj, label=None):
    if obj is None:
        return "—"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label if label is not None else str(obj))


def status_change_display(event: BillingEvent) -> str:
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
        return status_change_display(obj)

    @admin.display(description=_("amount"))
    def amount_display(self, obj):
        return money_display(obj.amount, obj.currency)
