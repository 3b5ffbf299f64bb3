"""Dates and times in templates, in the one style every page, PDF and e-mail uses (billing/clock.py):
{{ bill.due_date|day:biller }} and {{ payment.received_at|moment:biller }} (the biller's clock, the zone named)."""

from django import template

from billing.clock import date_display, datetime_display

register = template.Library()


@register.filter
def day(value, biller=None) -> str:
    return date_display(value, biller=biller or None)


@register.filter
def moment(value, biller) -> str:
    return datetime_display(value, biller=biller)
