"""Left-to-right values in right-to-left pages: {{ bill.number|ltr }} isolates a value (a bill or phone number, a code)
so its characters keep their order in Arabic and Persian sentences. Safe to use inside {% blocktranslate %}: the
message ids do not change."""

from django import template
from django.utils.html import format_html

register = template.Library()


@register.filter
def ltr(value) -> str:
    return format_html('<bdi dir="ltr">{}</bdi>', value)
