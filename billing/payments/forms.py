"""The payer's forms for finding an account and paying it. Errors are tied to their fields (billing.forms)."""

from django import forms
from django.utils.translation import gettext_lazy as _

from billing.errors import ApplicationError
from billing.forms import AccessibleErrorsMixin, OnFileEmailField
from billing.models import Biller
from billing.money import parse_amount


class LookupForm(AccessibleErrorsMixin, forms.Form):
    """Account number plus whichever second factor the biller asks for."""

    account_number = forms.CharField(
        label=_("Account number"),
        max_length=40,
        help_text=_("It is printed at the top of your bill."),
        error_messages={"required": _("Enter your account number.")},
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"}),
    )

    def __init__(self, *args, biller: Biller, **kwargs):
        super().__init__(*args, **kwargs)
        self.biller = biller
        if biller.lookup_factor == Biller.LookupFactor.LAST_BILL_AMOUNT:
            self.fields["last_bill_amount"] = forms.CharField(
                label=_("Amount of your last bill"),
                max_length=20,
                help_text=_("The total printed on your most recent bill, for example 42.50."),
                error_messages={"required": _("Enter the amount of your last bill.")},
                widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
            )
        else:
            self.fields["postal_code"] = forms.CharField(
                label=_("Postal code of the service address"),
                max_length=20,
                error_messages={"required": _("Enter the postal code of the service address.")},
                widget=forms.TextInput(attrs={"autocomplete": "postal-code", "autocapitalize": "characters"}),
            )

    def point_to_alert(self, alert_id: str) -> "LookupForm":
        """Tie every field to a form-level alert (not found, locked out), so it is read with the fields."""
        for name, field in self.fields.items():
            described = [alert_id] + ([f"id_{name}_helptext"] if field.help_text else [])
            field.widget.attrs["aria-describedby"] = " ".join(described)
        return self

    def clean_last_bill_amount(self):
        try:
            return parse_amount(self.cleaned_data["last_bill_amount"], self.biller.currency)
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from None

    def clean_postal_code(self):
        value = self.cleaned_data["postal_code"]
        if not any(ch.isalnum() for ch in value):
            raise forms.ValidationError(_("Enter the postal code of the service address."))
        return value


class PaymentForm(AccessibleErrorsMixin, forms.Form):
    """How much to pay, an optional tip, where to send the receipt, and the enrolment offers.

    The amounts here are only the payer's choice; the server recomputes what is owed and charged (payment_quote).
    """

    FULL = "full"
    OTHER = "other"

    amount_choice = forms.ChoiceField(
        label=_("How much do you want to pay?"),
        choices=[(FULL, _("The full balance")), (OTHER, _("Another amount"))],
        initial=FULL,
        widget=forms.RadioSelect,
    )
    other_amount = forms.CharField(
        label=_("Amount to pay"),
        required=False,
        max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    tip_percent = forms.TypedChoiceField(
        label=_("Add a tip?"), coerce=int, required=False, empty_value=0, widget=forms.RadioSelect
    )
    receipt_email = OnFileEmailField(
        label=_("E-mail for your receipt"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        error_messages={
            "required": _("Enter the e-mail address where we should send your receipt."),
            "invalid": _("Enter an e-mail address like name@example.com."),
        },
    )
    paperless = forms.BooleanField(label=_("Send my future bills by e-mail (paperless)"), required=False)
    autopay = forms.BooleanField(label=_("Save this card for autopay"), required=False)

    described_by = {"other_amount": "other-amount-limits"}

    def __init__(
        self,
        *args,
        biller: Biller,
        payer_email: str = "",
        email_on_file: str = "",
        offer_paperless: bool = True,
        offer_autopay: bool = True,
        **kwargs,
    ):
        """`payer_email`: the signed-in payer's own address, pre-filled as it is. `email_on_file`: the account's
        address, pre-filled masked for a payer who came by a pay link or the lookup (see OnFileEmailField).
        `offer_paperless`/`offer_autopay`: False when the account already has it, so it is not offered again."""
        super().__init__(*args, **kwargs)
        self.biller = biller
        self.fields["other_amount"].widget.attrs["aria-describedby"] = self.described_by["other_amount"]
        if payer_email:
            self.initial.setdefault("receipt_email", payer_email)
        elif email_on_file:
            self.fields["receipt_email"].show_on_file(
                self, "receipt_email", email_on_file,
                _("The address we have for this account, partly hidden. We'll send the receipt there, or type "
                  "another address."),
            )  # fmt: skip
        if not offer_paperless:
            del self.fields["paperless"]
        if not offer_autopay:
            del self.fields["autopay"]
        if biller.tips_enabled and biller.tip_presets:
            self.fields["tip_percent"].choices = [(0, _("No tip"))] + [
                (int(p), f"{int(p)}%") for p in biller.tip_presets
            ]
            self.fields["tip_percent"].initial = 0
        else:
            del self.fields["tip_percent"]

    def clean(self):
        data = super().clean()
        if data.get("amount_choice") == self.OTHER:
            raw = data.get("other_amount", "")
            if not raw.strip():
                self.add_error("other_amount", _("Enter the amount you want to pay."))
            else:
                try:
                    data["amount"] = parse_amount(raw, self.biller.currency)
                except ApplicationError as error:
                    self.add_error("other_amount", error.message)
        else:
            data["amount"] = None  # the full balance, as the server computes it
        data.setdefault("tip_percent", 0)
        return data
