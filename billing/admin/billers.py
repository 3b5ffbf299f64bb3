"""Admin for billers: branding, money and time, payment limits, tips, reminder and retry schedules."""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from stdnum import bic, iban

from billing.errors import ApplicationError
from billing.models import Biller
from billing.money import validate_currency

from .plans import PlanRulesInline


class PrivateFileInput(forms.ClearableFileInput):
    """The stored file's name without a link: private storage has no public address (the logo is only embedded)."""

    template_name = "billing/widgets/private_file_input.html"


class BillerAdminForm(forms.ModelForm):
    class Meta:
        model = Biller
        fields = "__all__"
        widgets = {"logo": PrivateFileInput(attrs={"accept": "image/png,image/jpeg"})}

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

    def clean_bank_iban(self):
        value = self.cleaned_data["bank_iban"]
        if value and not iban.is_valid(value):
            raise ValidationError(_("This IBAN is not valid (check the digits)."))
        return iban.compact(value) if value else ""

    def clean_bank_bic(self):
        value = self.cleaned_data["bank_bic"]
        if value and not bic.is_valid(value):
            raise ValidationError(_("A BIC has 8 or 11 letters and digits, like COBADEFFXXX."))
        return bic.compact(value) if value else ""

    def clean(self):
        data = super().clean()
        prefix = data.get("bank_reference_prefix") or ""
        if data.get("bank_reference_scheme") == "numeric" and prefix and not prefix.isdigit():
            self.add_error("bank_reference_prefix", _("Numeric references take a prefix of digits only."))
        return data

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
    inlines = (PlanRulesInline,)
    fieldsets = (
        (None, {"fields": ("name", "slug")}),
        (_("Branding"), {"fields": ("logo", "brand_color", "tagline", "remit_address")}),
        (_("Bills and receipts"), {"fields": ("paper_size", "calendar")}),
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
        (
            _("Bank transfers"),
            {
                "fields": (
                    "bank_account_name", "bank_name", "bank_iban", "bank_bic", "bank_account_number",
                    "bank_routing_number", "bank_reference_scheme", "bank_reference_prefix",
                ),
                "description": _("Shown to payers under “Pay by bank transfer” and on the e-bill. Leave the IBAN "
                                 "and the account number empty to not offer transfers."),
            },
        ),  # fmt: skip
        (_("Tips"), {"fields": ("tips_enabled", "tip_presets")}),
        (_("Reminders and retries"), {"fields": ("reminder_schedule", "retry_schedule")}),
    )

    def get_readonly_fields(self, request, obj=None):
        # Amounts are stored in the currency's minor unit: once bills exist, changing the currency would change them.
        # Likewise the reference scheme and prefix: every printed reference would stop matching.
        readonly = []
        if obj is not None and obj.bills.exists():
            readonly.append("currency")
        if obj is not None and obj.accounts.exists():
            readonly += ["bank_reference_scheme", "bank_reference_prefix"]
        return tuple(readonly)
