"""The numbers a biller acts on, read with database aggregates (conditional aggregation, TruncMonth): a fixed number
of queries whatever the number of bills, never a Python loop over rows.

`insight_report` is the way in: billing's own sections (adoption, collections, receivables, recovery), then each
registered source's (reminders from notifications, sign-ins and invitations from accounts), cached a few minutes per
biller, period and language. Every figure carries a note that says in plain words what it counts.
"""

from __future__ import annotations

import datetime as dt

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from billing.clock import biller_today, biller_zone
from billing.models import (
    AutopayCharge,
    AutopayChargeTry,
    AutopayEnrollment,
    Bill,
    Biller,
    PaperlessEnrollment,
    Payment,
    Refund,
)

from .periods import Period
from .report import Chart, Figure, Money, Ratio, Report, Section, Table
from .sources import InsightContext, insight_sources

CACHE_SECONDS = 5 * 60
CACHE_VERSION = 1
# Bills that went out to the payer: drafts were never sent, void bills are not owed.
BILLED_EXCLUDED = (Bill.Status.DRAFT, Bill.Status.VOID)
AGING_BUCKETS = (  # (slug, label, fewest and most days past due; None is open-ended)
    ("current", "Current (not yet due)", None, 0),
    ("d1_30", "1–30 days past due", 1, 30),
    ("d31_60", "31–60 days past due", 31, 60),
    ("d61_90", "61–90 days past due", 61, 90),
    ("d90_plus", "More than 90 days past due", 91, None),
)


def insight_report(*, biller: Biller, period: Period, today: dt.date | None = None) -> Report:
    """The whole page's figures, from the cache when they were read in the last few minutes."""
    today = today or biller_today(biller)
    key = f"billing:insight:v{CACHE_VERSION}:{biller.pk}:{period.kind}:{period.key}:{today}:{get_language()}"
    report = cache.get(key)
    if report is None:
        report = insight_report_build(biller=biller, period=period, today=today)
        cache.set(key, report, CACHE_SECONDS)
    return report


def insight_report_build(*, biller: Biller, period: Period, today: dt.date) -> Report:
    previous = period.previous()
    # Months and days are the biller's: TruncMonth and __date lookups follow the active time zone.
    with timezone.override(biller_zone(biller)), transaction.atomic():
        if connection.vendor == "postgresql":
            # These aggregates run in well under a second, but their subplans inflate PostgreSQL's cost estimates
            # past jit_above_cost, and compiling them took 20 times longer than running them (bench_insight.py).
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
        adoption, context, billed = _adoption(biller=biller, period=period, previous=previous, today=today)
        report = Report(biller_id=biller.pk, currency=biller.currency, period=period, previous=previous, today=today)
        report.sections.append(adoption)
        report.sections.append(_collections(context=context, billed=billed))
        report.sections.append(_receivables(context=context, billed=billed))
        report.sections.append(_recovery(context=context))
        for source in insight_sources():
            for section in source.sections(context=context):
                report.merge(section)
    return report


def _money(biller: Biller, minor) -> Money:
    return Money(int(minor or 0), biller.currency)


def _month_label(first: dt.date) -> str:
    return first.strftime("%Y-%m")


# ----------------------------------------------------------------------------------------------------------------
# Adoption


def _bills_with_enrolment_flags(biller: Biller):
    """Bills that went out, each flagged with whether its account had paperless and autopay on its issue date."""
    paperless_on = PaperlessEnrollment.objects.filter(
        account=OuterRef("account"), consented_at__date__lte=OuterRef("issue_date")
    ).filter(Q(cancelled_at__isnull=True) | Q(cancelled_at__date__gt=OuterRef("issue_date")))
    # An enrolment was on at the issue date if it is on now and has not changed since, or it changed after that date
    # (an enrolment paused, suspended or cancelled later was on before; one re-activated later was probably not).
    autopay_on = AutopayEnrollment.objects.filter(
        account=OuterRef("account"), consented_at__date__lte=OuterRef("issue_date")
    ).filter(
        Q(status=AutopayEnrollment.Status.ACTIVE, status_changed_at__date__lte=OuterRef("issue_date"))
        | (~Q(status=AutopayEnrollment.Status.ACTIVE) & Q(status_changed_at__date__gt=OuterRef("issue_date")))
    )
    return (
        Bill.objects.filter(biller=biller, issue_date__isnull=False)
        .exclude(status__in=BILLED_EXCLUDED)
        .annotate(on_paperless=Exists(paperless_on), on_autopay=Exists(autopay_on))
    )


def _adoption(*, biller, period, previous, today):
    months = period.trend_months()
    bills = _bills_with_enrolment_flags(biller)
    now, before = Q(issue_date__range=(period.start, period.end)), Q(issue_date__range=(previous.start, previous.end))
    paperless, autopay = Q(on_paperless=True), Q(on_autopay=True)
    totals = bills.filter(issue_date__range=(previous.start, period.end)).aggregate(
        active=Count("account", distinct=True, filter=now),
        paperless=Count("account", distinct=True, filter=now & paperless),
        autopay=Count("account", distinct=True, filter=now & autopay),
        billed=Sum("total", filter=now),
        active_prev=Count("account", distinct=True, filter=before),
        paperless_prev=Count("account", distinct=True, filter=before & paperless),
        autopay_prev=Count("account", distinct=True, filter=before & autopay),
        billed_prev=Sum("total", filter=before),
    )
    by_month = {
        row["month"]: row
        for row in bills.filter(issue_date__range=(months[0], period.end))
        .annotate(month=TruncMonth("issue_date"))
        .values("month")
        .annotate(
            active=Count("account", distinct=True),
            paperless=Count("account", distinct=True, filter=paperless),
            autopay=Count("account", distinct=True, filter=autopay),
        )
        .order_by("month")
    }
    empty = {"active": 0, "paperless": 0, "autopay": 0}
    trend_rows = []
    for first in months:
        row = by_month.get(first, empty)
        trend_rows.append(
            [_month_label(first), row["active"], Ratio(row["paperless"], row["active"]),
             Ratio(row["autopay"], row["active"])]
        )  # fmt: skip
    section = Section(slug="adoption", title=_("Adoption"))
    active_note = _("Active accounts: accounts with at least one bill issued in the period (drafts and void bills "
                    "left out).")  # fmt: skip
    section.figures = [
        Figure(_("Active accounts"), totals["active"], totals["active_prev"], active_note),
        Figure(
            _("Paperless"),
            Ratio(totals["paperless"], totals["active"]),
            Ratio(totals["paperless_prev"], totals["active_prev"]),
            _("Paperless: active accounts that had paperless e-bills on when a bill of the period was issued ÷ "
              "active accounts."),
        ),  # fmt: skip
        Figure(
            _("Autopay"),
            Ratio(totals["autopay"], totals["active"]),
            Ratio(totals["autopay_prev"], totals["active_prev"]),
            _("Autopay: active accounts that had autopay on (not paused, suspended or cancelled) when a bill of the "
              "period was issued ÷ active accounts."),
        ),  # fmt: skip
    ]
    section.tables.append(
        Table(
            slug="adoption_trend",
            title=_("Paperless and autopay, month by month"),
            note=_("For each of the 12 months ending with the period: active accounts (a bill issued that month), "
                   "and the share of them with paperless or autopay on at the bill's issue date."),
            columns=[_("Month"), _("Active accounts"), _("Paperless %"), _("Autopay %")],
            rows=trend_rows,
            chart=Chart(value_columns=[2, 3], description=_("Paperless and autopay share of active accounts, by "
                                                            "month, in percent.")),
        )  # fmt: skip
    )
    billed = (_money(biller, totals["billed"]), _money(biller, totals["billed_prev"]))
    context = InsightContext(
        biller=biller, period=period, previous=previous, today=today,
        active_accounts=totals["active"], active_accounts_previous=totals["active_prev"],
        active_by_month={first: by_month.get(first, empty)["active"] for first in months},
    )  # fmt: skip
    return section, context, billed


# ----------------------------------------------------------------------------------------------------------------
# Collections


def _choice_rows(rows, field: str, choices) -> list[tuple[str, str, dict]]:
    """One row per choice of the model (so a payment method added tomorrow shows up with no change here), then any
    value found in the data that the choices no longer list."""
    found: dict[str, dict] = {}
    for row in rows:
        totals = found.setdefault(row[field], {"n": 0, "money": 0, "n_prev": 0, "money_prev": 0})
        for name in totals:
            totals[name] += row[name] or 0
    empty = {"n": 0, "money": 0, "n_prev": 0, "money_prev": 0}
    listed = [(value, str(label), found.get(value, empty)) for value, label in choices]
    known = {value for value, _label in choices}
    listed += [(value, value, totals) for value, totals in sorted(found.items()) if value not in known]
    return listed


def _collections(*, context: InsightContext, billed) -> Section:
    biller, period, previous = context.biller, context.period, context.previous
    (start, end), (prev_start, _prev_end) = context.bounds(period), context.bounds(previous)
    now = Q(received_at__gte=start, received_at__lt=end)
    before = Q(received_at__gte=prev_start, received_at__lt=start)
    rows = list(
        Payment.objects.filter(
            biller=biller, status=Payment.Status.SUCCEEDED, received_at__gte=prev_start, received_at__lt=end
        )
        .values("channel", "method")
        .annotate(
            n=Count("pk", filter=now), money=Sum("amount", filter=now),
            n_prev=Count("pk", filter=before), money_prev=Sum("amount", filter=before),
        )  # fmt: skip
        .order_by()
    )
    refunds = Refund.objects.filter(
        payment__biller=biller, status=Refund.Status.SUCCEEDED, created_at__gte=prev_start, created_at__lt=end
    ).aggregate(
        n=Count("pk", filter=Q(created_at__gte=start)),
        money=Sum("amount", filter=Q(created_at__gte=start)),
        n_prev=Count("pk", filter=Q(created_at__lt=start)),
        money_prev=Sum("amount", filter=Q(created_at__lt=start)),
    )
    collected = sum(r["money"] or 0 for r in rows)
    collected_prev = sum(r["money_prev"] or 0 for r in rows)
    count, count_prev = sum(r["n"] for r in rows), sum(r["n_prev"] for r in rows)
    guest = [r for r in rows if r["channel"] == Payment.Channel.GUEST_WEB]
    billed_now, billed_prev = billed

    section = Section(slug="collections", title=_("Collections"))
    section.figures = [
        Figure(_("Billed"), billed_now, billed_prev,
               _("Billed: totals of the bills issued in the period (drafts and void bills left out).")),
        Figure(_("Collected"), _money(biller, collected), _money(biller, collected_prev),
               _("Collected: what succeeded payments received in the period put on bills (fees and tips left out, "
                 "refunds not taken off).")),
        Figure(_("Collected ÷ billed"), Ratio(collected, billed_now.minor), Ratio(collected_prev, billed_prev.minor),
               _("Collected in the period ÷ billed in the period. Payments for earlier bills count too, so it can "
                 "pass 100%.")),
        Figure(_("Guest payments"), Ratio(sum(r["n"] for r in guest), count),
               Ratio(sum(r["n_prev"] for r in guest), count_prev),
               _("Guest payments: succeeded payments made online without signing in ÷ all succeeded payments in the "
                 "period.")),
        Figure(_("Refunded"), _money(biller, refunds["money"]), _money(biller, refunds["money_prev"]),
               _("Refunded: succeeded refunds made in the period (%(count)s), whatever the payment's date.")
               % {"count": refunds["n"]}),
    ]  # fmt: skip
    for slug, field, choices, title, note in (
        ("collections_by_channel", "channel", Payment.Channel.choices, _("Collected by channel"),
         _("Succeeded payments received in the period, by how they came in. Every channel the system knows is "
           "listed, with zero when it brought nothing.")),
        ("collections_by_method", "method", Payment.Method.choices, _("Collected by payment method"),
         _("Succeeded payments received in the period, by what they were paid with. Every method the system knows "
           "is listed.")),
    ):  # fmt: skip
        table_rows = [
            [label, totals["n"], _money(biller, totals["money"]), Ratio(totals["money"], collected),
             _money(biller, totals["money_prev"])]
            for _value, label, totals in _choice_rows(rows, field, choices)
        ]  # fmt: skip
        section.tables.append(
            Table(
                slug=slug, title=title, note=note,
                columns=[_("Name"), _("Payments"), _("Amount"), _("Share of amount %"), _("Previous period")],
                rows=table_rows,
                chart=Chart(value_columns=[2], description=_("Amount collected in the period, by %(what)s.")
                            % {"what": field}),
            )  # fmt: skip
        )
    return section


# ----------------------------------------------------------------------------------------------------------------
# Receivables


def _receivables(*, context: InsightContext, billed) -> Section:
    biller, period, today = context.biller, context.period, context.today
    owed = F("total") - F("amount_paid")
    aggregates = {}
    for slug, _label, fewest, most in AGING_BUCKETS:
        days = Q()
        if fewest is not None:
            days &= Q(due_date__lte=today - dt.timedelta(days=fewest))
        if most is not None:
            days &= Q(due_date__gte=today - dt.timedelta(days=most))
        aggregates[f"{slug}_amount"] = Sum(owed, filter=days)
        aggregates[f"{slug}_bills"] = Count("pk", filter=days)
    totals = Bill.objects.filter(biller=biller, status__in=Bill.PAYABLE_STATUSES).aggregate(**aggregates)
    outstanding = sum(totals[f"{slug}_amount"] or 0 for slug, *_rest in AGING_BUCKETS)
    rows = [
        [_(label), totals[f"{slug}_bills"], _money(biller, totals[f"{slug}_amount"]),
         Ratio(totals[f"{slug}_amount"] or 0, outstanding)]
        for slug, label, *_rest in AGING_BUCKETS
    ]  # fmt: skip
    # DSO over the days of the period that have passed, so "this month" is not diluted by days still to come.
    days = max(0, (min(period.end, today) - period.start).days + 1)
    section = Section(slug="receivables", title=_("Receivables"))
    section.figures = [
        Figure(_("Outstanding today"), _money(biller, outstanding), None,
               _("Outstanding: what open and written-off bills still owe today, whatever the period (past balances "
                 "are not kept, so there is no earlier figure).")),
        Figure(_("Days sales outstanding (DSO)"), Ratio(outstanding * days, billed[0].minor, as_percent=False), None,
               _("DSO: outstanding today ÷ billed in the period × %(days)s days of the period so far. Lower is "
                 "better.") % {"days": days}),
    ]  # fmt: skip
    section.tables.append(
        Table(
            slug="receivables_aging",
            title=_("Outstanding by age"),
            note=_("Open and written-off bills by days past their due date today; a bill's remaining balance counts "
                   "once, in its bucket."),
            columns=[_("Age"), _("Bills"), _("Outstanding"), _("Share %")],
            rows=rows,
            chart=Chart(value_columns=[2], description=_("Outstanding amount by days past due.")),
        )  # fmt: skip
    )
    return section


# ----------------------------------------------------------------------------------------------------------------
# Recovery: autopay charges, their retries and the backup card


def _recovery(*, context: InsightContext) -> Section:
    biller = context.biller
    start, end = context.bounds(context.period)
    Outcome = AutopayChargeTry.Outcome
    tries = list(
        AutopayChargeTry.objects.filter(charge__account__biller=biller, created_at__gte=start, created_at__lt=end)
        .values("attempt_number", "method_role", "outcome")
        .annotate(n=Count("pk"), money=Sum("payment__amount"))
        .order_by("attempt_number", "method_role", "outcome")
    )
    by_attempt: dict[int, dict] = {}
    for row in tries:
        slot = by_attempt.setdefault(row["attempt_number"], {"n": 0, "ok": 0, "amount": 0, "declined": 0, "auth": 0,
                                                             "error": 0})  # fmt: skip
        slot["n"] += row["n"]
        if row["outcome"] == Outcome.SUCCEEDED:
            slot["ok"] += row["n"]
            slot["amount"] += row["money"] or 0
        elif row["outcome"] == Outcome.DECLINED:
            slot["declined"] += row["n"]
        elif row["outcome"] == Outcome.AUTHENTICATION:
            slot["auth"] += row["n"]
        elif row["outcome"] == Outcome.ERROR:
            slot["error"] += row["n"]
    backup = [r for r in tries if r["method_role"] == AutopayCharge.MethodRole.BACKUP]
    backup_ok = [r for r in backup if r["outcome"] == Outcome.SUCCEEDED]

    charges = (
        AutopayCharge.objects.filter(account__biller=biller, first_failed_at__gte=start, first_failed_at__lt=end)
        .values("last_decline_class", "status")
        .annotate(n=Count("pk"))
        .order_by("last_decline_class", "status")
    )
    by_class: dict[str, dict] = {}
    Status = AutopayCharge.Status
    for row in charges:
        slot = by_class.setdefault(row["last_decline_class"] or "", {"n": 0, "paid": 0, "final": 0, "open": 0})
        slot["n"] += row["n"]
        if row["status"] == Status.SUCCEEDED:
            slot["paid"] += row["n"]
        elif row["status"] == Status.FAILED_FINAL:
            slot["final"] += row["n"]
        elif row["status"] != Status.CANCELLED:
            slot["open"] += row["n"]
    enrolments = AutopayEnrollment.objects.filter(account__biller=biller).aggregate(
        suspended=Count("pk", filter=Q(status=AutopayEnrollment.Status.SUSPENDED)),
        suspended_in_period=Count(
            "pk",
            filter=Q(status=AutopayEnrollment.Status.SUSPENDED, status_changed_at__gte=start, status_changed_at__lt=end),
        ),
    )

    section = Section(slug="recovery", title=_("Recovery: autopay and retries"))
    section.figures = [
        Figure(_("Recovered by the backup card"), _money(biller, sum(r["money"] or 0 for r in backup_ok)), None,
               _("Backup card: succeeded charges of a payer's backup card after the autopay card failed, in the period "
                 "(%(ok)s of %(tried)s tries).") % {"ok": sum(r["n"] for r in backup_ok),
                                                     "tried": sum(r["n"] for r in backup)}),
        Figure(_("Autopay enrolments suspended"), enrolments["suspended"], None,
               _("Suspended: autopay enrolments the system stopped because charges kept failing, today "
                 "(%(recent)s of them suspended in the period).") % {"recent": enrolments["suspended_in_period"]}),
    ]  # fmt: skip
    section.tables.append(
        Table(
            slug="recovery_by_attempt",
            title=_("Autopay charges by attempt"),
            note=_("Every off-session charge of a card made in the period (the autopay card and the backup card), by "
                   "attempt number: 1 is the first charge, 2 and up are retries."),
            columns=[_("Attempt"), _("Tries"), _("Succeeded"), _("Declined"), _("Needs the payer"), _("Errors"),
                     _("Collected"), _("Success %")],
            rows=[
                [number, s["n"], s["ok"], s["declined"], s["auth"], s["error"], _money(biller, s["amount"]),
                 Ratio(s["ok"], s["n"])]
                for number, s in sorted(by_attempt.items())
            ],
            chart=Chart(value_columns=[7], description=_("Share of tries that succeeded, by attempt number.")),
        )  # fmt: skip
    )
    class_labels = {"hard": _("Hard decline"), "soft": _("Soft decline"),
                    "authentication": _("Bank wants authentication"), "": _("No decline recorded")}  # fmt: skip
    section.tables.append(
        Table(
            slug="recovery_by_decline_class",
            title=_("Failed autopay charges by decline class"),
            note=_("Autopay charges whose first failure was in the period, by the class of their last decline: how "
                   "many were paid in the end by a retry or the backup card, failed for good, or are still waiting."),
            columns=[_("Decline class"), _("Charges"), _("Paid in the end"), _("Failed for good"),
                     _("Still retrying"), _("Recovered %")],
            rows=[
                [class_labels.get(name, name), s["n"], s["paid"], s["final"], s["open"], Ratio(s["paid"], s["n"])]
                for name, s in sorted(by_class.items())
            ],
            chart=Chart(value_columns=[5], description=_("Share of failed autopay charges recovered, by decline "
                                                         "class.")),
        )  # fmt: skip
    )
    return section
