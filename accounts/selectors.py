"""Selectors read. Each runs a fixed number of queries however many accounts, bills and payments a payer has."""

import datetime as dt
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import F, Min, Q, QuerySet, Sum, Window
from django.db.models.functions import RowNumber

from billing.bills.selectors import biller_cached
from billing.models import Bill, CustomerAccount, Payment
from notifications.models import ChannelName, NoticeKind, NoticePolicy, NoticePreference, SmsOptOut
from notifications.preferences import Policy, channel_address, channel_wanted, phone_normalize

from .models import AccountLink, User

# How many of each an account card on the dashboard shows; the account's own page lists them all, paginated.
DASHBOARD_BILLS = 3
DASHBOARD_PAYMENTS = 3


def user_account_links(*, user: User) -> QuerySet[AccountLink]:
    return (
        AccountLink.objects.filter(user=user)
        .select_related("customer_account__biller")
        .order_by("customer_account__account_number", "pk")
    )


def user_account_link(*, user: User, account_id: int) -> AccountLink | None:
    """The user's link to this customer account, or None: the caller answers 404 either way it is not theirs."""
    return user_account_links(user=user).filter(customer_account_id=account_id).first()


def payer_bills(*, user: User) -> QuerySet[Bill]:
    """Every bill a payer may see: issued bills (never drafts) of accounts linked to them."""
    return Bill.objects.filter(account__links__user=user).exclude(status=Bill.Status.DRAFT)


def payer_bill(*, user: User, bill_id: int) -> Bill | None:
    return payer_bills(user=user).select_related("account", "biller").filter(pk=bill_id).first()


def account_bills(*, account: CustomerAccount) -> QuerySet[Bill]:
    return Bill.objects.filter(account=account).exclude(status=Bill.Status.DRAFT).order_by("-due_date", "-pk")


def account_payments(*, account: CustomerAccount) -> QuerySet[Payment]:
    return Payment.objects.filter(account=account).order_by("-created_at", "-pk")


@dataclass
class AccountSummary:
    link: AccountLink
    balance: int = 0
    next_due_date: dt.date | None = None
    bills: list[Bill] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)

    @property
    def account(self) -> CustomerAccount:
        return self.link.customer_account

    @property
    def currency(self) -> str:
        return self.account.biller.currency


def _balances(account_ids: list[int]) -> dict[int, dict]:
    rows = (
        # The statuses written into the statement: the page cache runs it as a prepared statement, whose generic plan
        # uses the open bills' partial index only when it can read them (billing/lookups.py).
        Bill.objects.filter(account_id__in=account_ids, status__in_constants=Bill.PAYABLE_STATUSES)
        .values("account_id")
        .annotate(
            owed=Sum(F("total") - F("amount_paid")),
            next_due=Min("due_date", filter=Q(amount_paid__lt=F("total"))),
        )
    )
    return {row["account_id"]: row for row in rows}


def _latest_per_account(queryset: QuerySet, account_ids: list[int], *, order_by: tuple, per_account: int):
    """The newest `per_account` rows of each account, in one query, in no particular order. Where the database
    allows it (PostgreSQL), one `ORDER BY … LIMIT` per account joined by UNION ALL, each read from the account's
    newest-first index: the query costs what it shows, however long the history. Elsewhere (SQLite) a window
    function, which ranks every row of the accounts."""
    if connection.features.supports_slicing_ordering_in_compound:
        parts = [queryset.filter(account_id=pk).order_by(*order_by)[:per_account] for pk in account_ids]
        return parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    by = [F(name[1:]).desc() if name.startswith("-") else F(name).asc() for name in order_by]
    return (
        queryset.filter(account_id__in=account_ids)
        .annotate(rank=Window(RowNumber(), partition_by=[F("account_id")], order_by=by))
        .filter(rank__lte=per_account)
    )


# What an account card shows of a bill and of a payment (templates/accounts/bill_list.html, payment_list.html).
_CARD_BILL_FIELDS = ("pk", "account_id", "number", "status", "due_date", "currency", "total", "amount_paid")
_CARD_PAYMENT_FIELDS = (
    "pk", "account_id", "confirmation_number", "status", "method", "currency", "amount", "fee_amount", "tip_amount",
    "amount_refunded", "received_at", "created_at",
)  # fmt: skip


def dashboard_accounts(
    *, user: User, bills_per_account: int = DASHBOARD_BILLS, payments_per_account: int = DASHBOARD_PAYMENTS
) -> list[AccountSummary]:
    """Every linked account with its balance, next due date, newest bills and newest payments. Four queries."""
    # The billers (name, currency, clock) from the shared cache: an account row is small, a biller row is not.
    links = user_account_links(user=user).select_related(None).select_related("customer_account")
    summaries = {}
    for link in links:
        link.customer_account.biller = biller_cached(link.customer_account.biller_id)
        summaries[link.customer_account_id] = AccountSummary(link=link)
    if not summaries:
        return []
    ids = list(summaries)
    for account_id, row in _balances(ids).items():
        summaries[account_id].balance = row["owed"] or 0
        summaries[account_id].next_due_date = row["next_due"]
    bills = _latest_per_account(
        Bill.objects.exclude(status=Bill.Status.DRAFT).only(*_CARD_BILL_FIELDS),
        ids, order_by=("-due_date", "-pk"), per_account=bills_per_account,
    )  # fmt: skip
    for bill in sorted(bills, key=lambda b: (b.due_date, b.pk), reverse=True):
        summaries[bill.account_id].bills.append(bill)
    payments = _latest_per_account(
        Payment.objects.only(*_CARD_PAYMENT_FIELDS),
        ids, order_by=("-created_at", "-pk"), per_account=payments_per_account,
    )  # fmt: skip
    for payment in sorted(payments, key=lambda p: (p.created_at, p.pk), reverse=True):
        summaries[payment.account_id].payments.append(payment)
    return list(summaries.values())


def account_summary(*, link: AccountLink) -> AccountSummary:
    """One account's balance and next due date (the account page lists bills and payments itself, paginated)."""
    summary = AccountSummary(link=link)
    row = _balances([link.customer_account_id]).get(link.customer_account_id)
    if row:
        summary.balance, summary.next_due_date = row["owed"] or 0, row["next_due"]
    return summary


@dataclass(frozen=True)
class NoticeChoice:
    kind: str
    kind_label: str
    channel: str
    channel_label: str
    allowed: bool  # the biller sends this kind on this channel, and we have an address for it
    enabled: bool  # what will happen now: the payer's explicit choice, else the default


def notice_choices(*, account) -> tuple[list[NoticeChoice], dict]:
    """The payer's notice grid for one account (kinds × channels), with what is allowed and what is on. Fixed queries."""
    policy = Policy.of(NoticePolicy.objects.filter(biller_id=account.biller_id).first())
    choices = {
        (account.pk, p.kind, p.channel): p.enabled for p in NoticePreference.objects.filter(account=account)
    }
    phone = phone_normalize(account.phone)
    opted_out = set(SmsOptOut.objects.filter(phone=phone).values_list("phone", flat=True)) if phone else set()
    grid = []
    for kind in NoticeKind:
        for channel in ChannelName:
            allowed = policy.allows(kind, channel) and bool(channel_address(account, channel))
            allowed = allowed and not (channel == ChannelName.SMS and phone in opted_out)
            enabled = allowed and channel_wanted(
                account=account, kind=kind, channel=channel, policy=policy, choices=choices, opted_out=opted_out
            )
            grid.append(NoticeChoice(kind, kind.label, channel, channel.label, allowed, enabled))
    facts = {"email": account.email, "phone": account.phone, "sms_stopped": bool(phone and phone in opted_out)}
    return grid, facts
