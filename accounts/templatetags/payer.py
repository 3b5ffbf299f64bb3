"""Template helpers for the payer pages."""

from django import template

from billing.money import format_money

register = template.Library()


@register.filter
def money(minor: int | None, currency: str) -> str:
    """{{ bill.total|money:bill.currency }}: integer minor units, formatted in the active language."""
    return format_money(minor or 0, currency)


@register.filter
def overdue(bill, today) -> bool:
    """{% if bill|overdue:today %}: payable and past its due date (today in the biller's time zone)."""
    return bool(today) and bill.is_overdue(today)
