"""The enrolment offer on a payment's receipt. Errors are tied to their fields (billing.forms)."""

from django import forms
from django.utils.translation import gettext_lazy as _

from billing.forms import AccessibleErrorsMixin, OnFileEmailField


class GuestEnrollmentForm(AccessibleErrorsMixin, forms.Form):
    """The offer on the receipt: future bills by e-mail, one tick plus the address."""

    paperless = forms.BooleanField(
        label=_("Get your bills by e-mail (paperless)"),
        error_messages={"required": _("Tick the box to get your bills by e-mail.")},
    )
    email = OnFileEmailField(
        label=_("E-mail for your bills"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        error_messages={
            "required": _("Enter the e-mail address for your bills."),
            "invalid": _("Enter an e-mail address like name@example.com."),
        },
    )

    def __init__(self, *args, email: str = "", email_on_file: str = "", **kwargs):
        """`email`: an address the viewer may see (one they typed, or their own), pre-filled as it is;
        `email_on_file`: the account's address, pre-filled masked (see OnFileEmailField)."""
        super().__init__(*args, **kwargs)
        if email:
            self.initial.setdefault("email", email)
        elif email_on_file:
            self.fields["email"].show_on_file(
                self, "email", email_on_file,
                _("The address we have for this account, partly hidden. Keep it, or type another address."),
            )  # fmt: skip
