"""Autopay reads: the cards a charge may use, a bill's charges, the retry days, the enrolment statuses of accounts and
the next charge autopay would make."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Exists, F, OuterRef, Q, Window
from django.db.models.functions import RowNumber

from ..models import AutopayCharge, AutopayEnrollment, BankMandate, Bill, PaperlessEnrollment, PaymentMethod
from ..money import format_money

Role = AutopayCharge.MethodRole


def autopay_cards(*, enrollment: AutopayEnrollment, today: dt.date) -> dict[str, PaymentMethod | None]:
    """The cards autopay may charge: the enrolment's card ("default"), and the payer's backup card ("backup"; the
    payer's default card when the enrolment card is the backup). Removed or expired cards are left out.

    One query for the backup, made only when the backup is asked for, and remembered on this enrolment instance (a
    charge run asks several times and reads the cards once)."""

    def usable(method):
        if method is None or method.removed_at is not None or method.is_expired(today):
            return False
        # A bank account debits only under a mandate for this account that is not revoked or inactive.
        return not method.is_bank_account or bank_mandate_may_debit(method, account_id=enrollment.account_id)

    return _Cards(enrollment, today, usable)


class _Cards(dict):
    """{role: card or None}, the backup looked up on first access."""

    def __init__(self, enrollment: AutopayEnrollment, today: dt.date, usable):
        default = enrollment.payment_method
        super().__init__({Role.DEFAULT: default if usable(default) else None})
        self._enrollment, self._today, self._usable = enrollment, today, usable

    def __missing__(self, role):
        if role != Role.BACKUP:
            raise KeyError(role)
        memo = self._enrollment.__dict__.setdefault("_autopay_backup_by_day", {})
        if self._today not in memo:
            saved = PaymentMethod.objects.filter(user_id=self._enrollment.user_id, removed_at__isnull=True).exclude(
                pk=self._enrollment.payment_method_id
            )
            # The backup card, else the payer's default card: one query, backup first.
            backup = saved.filter(Q(is_backup=True) | Q(is_default=True)).order_by("-is_backup", "pk").first()
            memo[self._today] = backup if self._usable(backup) else None
        self[role] = memo[self._today]
        return self[role]


def charge_mandate(charge: AutopayCharge):
    """What authorises a charge row: its autopay enrolment, or the payment plan of its instalment. Both carry
    payment_method and user_id, which is all autopay_cards reads."""
    return charge.enrollment if charge.enrollment_id else charge.instalment.plan


def charge_cards(charge: AutopayCharge, today: dt.date) -> dict[str, PaymentMethod | None]:
    return autopay_cards(enrollment=charge_mandate(charge), today=today)


def bank_mandate_may_debit(method: PaymentMethod, *, account_id: int) -> bool:
    mandate = BankMandate.objects.filter(payment_method=method).first()
    return mandate is not None and mandate.account_id == account_id and mandate.may_debit


def autopay_charges_for_bill(*, bill: Bill):
    return AutopayCharge.objects.filter(bill=bill).prefetch_related("tries__payment__attempts").order_by("pk")


def autopay_retry_days(biller) -> list[int]:
    days = [d for d in (biller.retry_schedule or []) if isinstance(d, int) and not isinstance(d, bool) and d > 0]
    return sorted(days)


def expiring_cards(enrollment: AutopayEnrollment, today: dt.date) -> list[PaymentMethod]:
    next_month = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    soon = {(today.year, today.month), (next_month.year, next_month.month)}
    cards = [enrollment.payment_method]
    cards += list(
        PaymentMethod.objects.filter(user_id=enrollment.user_id, removed_at__isnull=True, is_backup=True).exclude(
            pk=enrollment.payment_method_id
        )
    )
    return [c for c in cards if c.removed_at is None and c.exp_year and (c.exp_year, c.exp_month) in soon]


def autopay_current(*, account) -> AutopayEnrollment | None:
    return (
        AutopayEnrollment.objects.filter(account=account, status__in=AutopayEnrollment.CURRENT_STATUSES)
        .select_related("payment_method")
        .first()
    )


def autopay_on(account_ref: str = "pk") -> Exists:
    """Whether the account (the outer query's `account_ref`) has autopay now, as an expression to annotate an account
    query with: `autopay_current(...) is not None` without a query of its own."""
    return Exists(
        AutopayEnrollment.objects.filter(account=OuterRef(account_ref), status__in=AutopayEnrollment.CURRENT_STATUSES)
    )


@dataclass(frozen=True)
class UpcomingCharge:
    bill: Bill
    charge_on: dt.date
    amount: int
    currency: str
    above_max: bool

    @property
    def amount_display(self) -> str:
        return format_money(self.amount, self.currency)


@dataclass
class EnrollmentStatus:
    autopay: AutopayEnrollment | None = None
    paperless: PaperlessEnrollment | None = None
    upcoming: UpcomingCharge | None = None

    @property
    def max_display(self) -> str:
        if self.autopay is None or self.autopay.max_amount is None:
            return ""
        return format_money(self.autopay.max_amount, self.autopay.currency)


def _upcoming(enrollment: AutopayEnrollment, bill: Bill, today: dt.date) -> UpcomingCharge:
    amount = bill.total - bill.amount_paid
    return UpcomingCharge(
        bill=bill,
        charge_on=max(enrollment.charge_date(bill.due_date), today),
        amount=amount,
        currency=bill.currency,
        above_max=enrollment.max_amount is not None and amount > enrollment.max_amount,
    )


def enrollment_statuses(*, account_ids: list[int], today: dt.date) -> dict[int, EnrollmentStatus]:
    """Autopay, paperless and the next autopay charge of each account. Three queries however many accounts (two
    when none has autopay on)."""
    statuses = {account_id: EnrollmentStatus() for account_id in account_ids}
    if not statuses:
        return statuses
    for enrollment in AutopayEnrollment.objects.filter(
        account_id__in=account_ids, status__in=AutopayEnrollment.CURRENT_STATUSES
    ).select_related("payment_method"):
        statuses[enrollment.account_id].autopay = enrollment
    for enrollment in PaperlessEnrollment.objects.filter(account_id__in=account_ids, cancelled_at__isnull=True):
        statuses[enrollment.account_id].paperless = enrollment
    active = [i for i, s in statuses.items() if s.autopay and s.autopay.status == AutopayEnrollment.Status.ACTIVE]
    if active:
        # The next bill autopay would pay: the earliest-due payable bill with a balance that is not overdue yet.
        # (An overdue bill is the payer's to pay by hand; whether autopay catches up on it is the charging issue's.)
        bills = (
            Bill.objects.filter(
                account_id__in=active, status__in=Bill.PAYABLE_STATUSES, amount_paid__lt=F("total"), due_date__gte=today
            )
            .annotate(rank=Window(RowNumber(), partition_by=[F("account_id")], order_by=[F("due_date"), F("pk")]))
            .filter(rank=1)
        )
        for bill in bills:
            statuses[bill.account_id].upcoming = _upcoming(statuses[bill.account_id].autopay, bill, today)
    return statuses


def autopay_upcoming(*, account, today: dt.date) -> UpcomingCharge | None:
    """The next charge autopay would make on `account` (date and amount of the next bill under the rule, and
    whether it is above the payer's maximum), or None when autopay is not on or nothing is due."""
    return enrollment_statuses(account_ids=[account.pk], today=today)[account.pk].upcoming
