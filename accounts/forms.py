"""Forms for the payer's payment settings: autopay, paperless, and the short sign-up from a guest's e-mailed link.
They parse what was typed; billing/autopay/, billing/enrolment/ and billing/methods/ hold the rules."""

from django import forms
from django.contrib.auth import password_validation
from django.utils.translation import gettext_lazy as _

from billing.errors import ApplicationError
from billing.forms import AccessibleErrorsMixin
from billing.models import AutopayEnrollment
from billing.money import parse_amount


class AutopayForm(AccessibleErrorsMixin, forms.Form):
    payment_method = forms.TypedChoiceField(
        label=_("Card to charge"),
        coerce=int,
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose the card to charge."), "invalid_choice": _("Choose one of your cards.")},
    )
    charge_rule = forms.ChoiceField(
        label=_("When to charge"),
        choices=AutopayEnrollment.ChargeRule.choices,
        initial=AutopayEnrollment.ChargeRule.ON_DUE_DATE,
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose when to charge.")},
    )
    days_before = forms.IntegerField(
        label=_("Days before the due date"),
        required=False,
        min_value=1,
        max_value=AutopayEnrollment.MAX_DAYS_BEFORE,
        initial=3,
        help_text=_("Only if you chose “Some days before the due date”: 1 to %(max)d.")
        % {"max": AutopayEnrollment.MAX_DAYS_BEFORE},
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    max_amount = forms.CharField(
        label=_("Maximum per bill (optional)"),
        required=False,
        max_length=20,
        help_text=_("A bill above this is not charged: we remind you to pay it yourself. Leave empty for no maximum."),
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    consent = forms.BooleanField(
        label=_("I agree to the autopay authorisation above."),
        error_messages={"required": _("Tick the box to agree to the autopay authorisation.")},
    )

    def __init__(self, *args, methods=(), currency="USD", **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.fields["payment_method"].choices = [(m.pk, m.summary) for m in methods]

    def clean_max_amount(self):
        value = (self.cleaned_data.get("max_amount") or "").strip()
        if not value:
            return None
        try:
            minor = parse_amount(value, self.currency)
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from None
        if minor <= 0:
            raise forms.ValidationError(_("The maximum must be more than zero, or left empty."))
        return minor

    def clean(self):
        data = super().clean()
        if data.get("charge_rule") == AutopayEnrollment.ChargeRule.DAYS_BEFORE and not data.get("days_before"):
            if "days_before" not in self.errors:
                self.add_error("days_before", _("Enter how many days before the due date to charge."))
        return data


class PaperlessForm(AccessibleErrorsMixin, forms.Form):
    """One tick: on sends bills by e-mail, off goes back to paper."""

    paperless = forms.BooleanField(label=_("Send my bills by e-mail instead of paper"), required=False)
    email = forms.EmailField(
        label=_("E-mail for your bills"),
        max_length=254,
        required=False,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        error_messages={"invalid": _("Enter an e-mail address like name@example.com.")},
    )

    def clean(self):
        data = super().clean()
        if data.get("paperless") and not data.get("email") and "email" not in self.errors:
            self.add_error("email", _("Enter the e-mail address for your bills."))
        return data


class GuestSignupForm(AccessibleErrorsMixin, forms.Form):
    """The one short step from a guest's autopay link: the e-mail is the one the link was sent to, and the code that
    was e-mailed there proves the visitor reads that mailbox."""

    password = forms.CharField(
        label=_("Choose a password (optional)"),
        required=False,
        strip=False,
        help_text=_("Leave it empty to sign in with a code we e-mail you each time."),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    code = forms.CharField(
        label=_("Code from the e-mail"),
        max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def __init__(self, *args, email="", signed_in=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.email = email
        self.order_fields(["code", "password"])
        if signed_in:  # the login exists already: only the code is asked for
            del self.fields["password"]

    def clean_password(self):
        password = self.cleaned_data.get("password") or ""
        if password:
            password_validation.validate_password(password)
        return password


BY_HAND = "hand"


class PlanForm(AccessibleErrorsMixin, forms.Form):
    """A payment plan: the schedule (by key; the server rebuilds the amounts), how the instalments are paid, the
    agreement. Staff's proposal has its schedule already: `schedules` is empty then."""

    schedule = forms.ChoiceField(
        label=_("Choose a schedule"), widget=forms.RadioSelect,
        error_messages={"required": _("Choose a schedule."), "invalid_choice": _("Choose one of the schedules shown.")},
    )  # fmt: skip
    method = forms.ChoiceField(
        label=_("How to pay the instalments"), widget=forms.RadioSelect,
        error_messages={"required": _("Choose how to pay the instalments."),
                        "invalid_choice": _("Choose one of your cards, or to pay by hand.")},
    )  # fmt: skip
    agree = forms.BooleanField(
        label=_("I agree to the payment plan above."),
        error_messages={"required": _("Tick the box to agree to the payment plan.")},
    )

    def __init__(self, *args, schedules=(), methods=(), **kwargs):
        super().__init__(*args, **kwargs)
        if schedules:
            self.fields["schedule"].choices = [(s.key, s.key) for s in schedules]
        else:
            del self.fields["schedule"]
        self.fields["method"].choices = [(str(m.pk), m.summary) for m in methods] + [
            (BY_HAND, _("I'll pay each instalment myself after a reminder"))
        ]
        if methods and not self.is_bound:
            self.fields["method"].initial = str(methods[0].pk)
