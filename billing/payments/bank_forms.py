"""The payer's bank-account form (pay screen and autopay): the IBAN, the account holder, the mandate shown and the
tick that accepts it. The IBAN is checked here for a message on its field, and again by the service."""

from django import forms
from django.utils.translation import gettext_lazy as _

from billing.errors import ApplicationError
from billing.forms import AccessibleErrorsMixin
from billing.models import BankMandate

from .bank_debits import mandate_text_digest
from .mandates import iban_check, mandate_text


class BankDebitForm(AccessibleErrorsMixin, forms.Form):
    iban = forms.CharField(
        label=_("IBAN"),
        max_length=42,
        required=False,  # checked in clean_iban, with the IBAN's own messages
        help_text=_("For example DE89 3704 0044 0532 0130 00. Spaces do not matter."),
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters", "inputmode": "text"}
        ),
    )
    holder_name = forms.CharField(
        label=_("Account holder's name"),
        max_length=200,
        error_messages={"required": _("Enter the account holder's name as the bank knows it.")},
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    mandate_accepted = forms.BooleanField(
        label=_("I accept the direct debit mandate above."),
        error_messages={"required": _("Tick the box to accept the mandate, or pay by card.")},
    )
    mandate_digest = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, biller, usage: str = BankMandate.Usage.SINGLE_USE, **kwargs):
        super().__init__(*args, **kwargs)
        self.mandate_text = mandate_text(biller=biller, usage=usage)
        self.fields["mandate_digest"].initial = mandate_text_digest(self.mandate_text)

    def clean_iban(self):
        try:
            return iban_check(self.cleaned_data.get("iban", "")).compact
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from None
