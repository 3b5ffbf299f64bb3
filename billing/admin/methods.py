"""Admin for saved payment methods and gateway customers (read-only: payers save and remove their cards)."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from billing.models import GatewayCustomer, PaymentMethod

from .mixins import ReadOnlyAdminMixin


@admin.register(PaymentMethod)
class PaymentMethodAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("user", "brand", "last4", "expiry", "is_default", "is_backup", "created_at", "removed_at")
    list_select_related = ("user",)
    list_filter = ("brand", "is_default", "is_backup", ("removed_at", admin.EmptyFieldListFilter))
    search_fields = ("user__email", "last4", "gateway_payment_method_id")

    @admin.display(description=_("expires"))
    def expiry(self, obj):
        return f"{obj.exp_month:02d}/{obj.exp_year}" if obj.exp_month and obj.exp_year else "—"


@admin.register(GatewayCustomer)
class GatewayCustomerAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("user", "gateway_customer_id", "created_at")
    list_select_related = ("user",)
    search_fields = ("user__email", "gateway_customer_id")
