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
