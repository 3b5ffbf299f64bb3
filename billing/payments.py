"""Online card payments: the quote, the exactly-once start, recording the gateway's result, the janitor and refunds.

The server alone decides what is charged. The browser may name an amount and a tip choice; `payment_quote` checks them
against the biller's rules and the bills as they are now, and `payment_start` recomputes the quote under the account's
row lock before anything reaches the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _

from .errors import ApplicationError
from .models import Bill, CustomerAccount
from .money import format_money, percent_of, validate_currency


@dataclass(frozen=True)
class Quote:
    """What the payer owes and what one payment would charge, all in integer minor units of `currency`.

    `amount` goes to the bills (oldest due first), `fee` is the biller's convenience fee, `tip` the payer's optional
    tip, and `total` = amount + fee + tip is what the card is charged."""

    owed: int
    amount: int
    fee: int
    tip: int
    total: int
    currency: str
    bills: tuple[Bill, ...]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def payment_quote(
    *,
    account: CustomerAccount,
    amount: int | None = None,
    tip_percent: int | None = None,
    tip_amount: int | None = None,
) -> Quote:
    """Quote a payment on `account`. `amount` None means the full balance. At most one of `tip_percent` (one of the
    biller's presets) and `tip_amount` (a custom tip in minor units) may be given, and only when tips are enabled."""
    biller = account.biller
    currency = validate_currency(biller.currency)
    money = lambda minor: format_money(minor, currency)  # noqa: E731 - a local shorthand for the messages

    bills = tuple(
        Bill.objects.filter(account_id=account.pk, status__in=Bill.PAYABLE_STATUSES).order_by("due_date", "pk")
    )
    bills = tuple(bill for bill in bills if bill.balance_due > 0)
    owed = sum(bill.balance_due for bill in bills)
    if owed <= 0:
        raise ApplicationError(_("There is nothing to pay on this account right now."))

    if amount is None:
        amount = owed
    elif not _is_int(amount):
        raise ApplicationError(_("Enter the amount to pay."))

    if owed < biller.minimum_payment:
        # A balance below the minimum can still be paid off, but only in full.
        if amount != owed:
            raise ApplicationError(
                _("The balance of %(owed)s is below the minimum payment, so it can only be paid in full.")
                % {"owed": money(owed)}
            )
    else:
        most = min(owed, biller.maximum_payment or owed)
        if amount < biller.minimum_payment:
            raise ApplicationError(
                _("The smallest payment accepted online is %(minimum)s.") % {"minimum": money(biller.minimum_payment)}
            )
        if amount > owed:
            raise ApplicationError(
                _("The amount is more than the %(owed)s owed. Please pay %(owed)s or less.") % {"owed": money(owed)}
            )
        if amount > most:
            raise ApplicationError(
                _("The largest payment accepted online is %(maximum)s. Please pay a smaller amount, or contact us "
                  "for other ways to pay.") % {"maximum": money(most)}  # fmt: skip
            )

    fee = biller.convenience_fee_fixed + percent_of(amount, biller.convenience_fee_basis_points)

    tip = 0
    if tip_percent is not None and tip_amount is not None:
        raise ApplicationError(_("Choose a tip percentage or enter a tip amount, not both."))
    if (tip_percent or tip_amount) and not biller.tips_enabled:
        raise ApplicationError(_("Tips are not accepted for this biller."))
    if tip_percent == 0 or tip_amount == 0:
        pass  # "no tip" is always a valid choice
    elif tip_percent is not None:
        presets = [int(p) for p in (biller.tip_presets or []) if _is_int(p) or str(p).isdigit()]
        if not _is_int(tip_percent) or tip_percent not in presets:
            raise ApplicationError(
                _("Choose one of the offered tip percentages: %(presets)s.")
                % {"presets": ", ".join(f"{p}%" for p in presets)}
            )
        tip = percent_of(amount, tip_percent * 100)
    elif tip_amount is not None:
        if not _is_int(tip_amount) or tip_amount < 0:
            raise ApplicationError(_("The tip cannot be negative."))
        tip = tip_amount

    return Quote(owed=owed, amount=amount, fee=fee, tip=tip, total=amount + fee + tip, currency=currency, bills=bills)
