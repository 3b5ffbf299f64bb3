"""What payer-facing forms share: parse what was typed, leave the rules to the services.

Every form ties its errors to its fields: a field with an error gets aria-invalid and an aria-describedby that points
at the error text (rendered as <p id="<field id>-error">), so screen readers read the error with the field.
"""

from django import forms
from django.utils.translation import gettext_lazy as _


class AccessibleErrorsMixin:
    def full_clean(self):
        super().full_clean()
        self.link_errors()

    # Extra element ids that describe a field (besides its help text), e.g. a hint rendered by the template.
    described_by: dict[str, str] = {}

    def link_errors(self):
        """Call again after add_error() outside clean(), e.g. for an error from a service."""
        for name in self.errors:
            if name in self.fields:
                field = self.fields[name]
                field.widget.attrs["aria-invalid"] = "true"
                described = [f"id_{name}-error"]
                if field.help_text:  # Django links help text itself only when we set no aria-describedby
                    described.append(f"id_{name}_helptext")
                if name in self.described_by:
                    described.append(self.described_by[name])
                field.widget.attrs["aria-describedby"] = " ".join(described)


def email_masked(address: str) -> str:
    """ "jane.doe@example.com" → "j*******@e******.com": enough for its owner to recognise, too little for whoever
    holds a forwarded pay link to learn it."""
    local, _at, domain = (address or "").partition("@")
    if not local or not domain:
        return ""
    name, dot, tld = domain.rpartition(".")
    if not name:
        name, dot, tld = domain, "", ""
    return f"{local[0]}{'*' * (len(local) - 1)}@{name[0]}{'*' * (len(name) - 1)}{dot}{tld}"


class OnFileEmailField(forms.EmailField):
    """An e-mail field that may be pre-filled with an address on file without showing it: the field shows the
    masked address, and a value left exactly as shown means the address on file. Anything typed over it is an
    ordinary e-mail address. Set `on_file` (and the form's initial value to `masked`) per form instance."""

    on_file = ""

    @property
    def masked(self) -> str:
        return email_masked(self.on_file)

    def clean(self, value):
        if self.on_file and (value or "").strip() == self.masked:
            return self.on_file
        return super().clean(value)

    def show_on_file(self, form, name: str, address: str, help_text: str) -> None:
        """Pre-fill form[name] with `address`, masked, unless the form was posted."""
        self.on_file = address
        if address and self.masked:
            form.initial.setdefault(name, self.masked)
            self.help_text = help_text
