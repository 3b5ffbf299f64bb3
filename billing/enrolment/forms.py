"""The enrolment offer on a payment's receipt. Errors are tied to their fields (billing.forms)."""

from django import forms
from django.utils.translation import gettext_lazy as _

from billing.forms import AccessibleErrorsMixin


class GuestEnrollmentForm(AccessibleErrorsMixin, forms.Form):
    """The offer on the receipt: future bills by e-mail, one tick plus the address."""

    paperless = forms.BooleanField(
        label=_("Get your bills by e-mail (paperless)"),
        error_messages={"required": _("Tick the box to get your bills by e-mail.")},
    )
    email = forms.EmailField(
        label=_("E-mail for your bills"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        error_messages={
            "required": _("Enter the e-mail address for your bills."),
            "invalid": _("Enter an e-mail address like name@example.com."),
        },
    )
