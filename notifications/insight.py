"""Reminder yield for the staff insight page: how many notices went out per kind, channel and schedule step, and how
many of their bills were paid within 72 hours; beside it, bills of the same age that got no notice at that step.

Registered as an insight source in NotificationsConfig.ready() (billing asks, notifications answers; billing never
imports this app). Two queries whatever the number of bills or notices.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, DateField, DateTimeField, Exists, ExpressionWrapper, F, Min, OuterRef, Q, Value
from django.utils.translation import gettext as _

from billing.insight.report import Chart, Ratio, Section, Table
from billing.insight.sources import InsightContext
from billing.models import Bill, PaymentAllocation

from .models import ChannelName, Notification, NoticeKind
from .planner import reminder_kind, schedule_steps

WINDOW = dt.timedelta(hours=72)


class ReminderYield:
    def sections(self, *, context: InsightContext) -> list[Section]:
        biller = context.biller
        start, end = context.bounds(context.period)
        sent_at = OuterRef("sent_at")
        paid = Exists(
            PaymentAllocation.objects.filter(
                bill=OuterRef("bill"), payment__status="succeeded", payment__received_at__gte=sent_at,
                payment__received_at__lt=ExpressionWrapper(sent_at + Value(WINDOW), output_field=DateTimeField()),
            )  # fmt: skip
        )
        rows = list(
            Notification.objects.filter(
                biller=biller, bill__isnull=False, status=Notification.Status.SENT, sent_at__gte=start,
                sent_at__lt=end,
            )  # fmt: skip
            .annotate(paid_soon=paid)
            .values("kind", "channel", "step")
            .annotate(sent=Count("pk"), paid=Count("pk", filter=Q(paid_soon=True)))
            .order_by("kind", "channel", "step")
        )
        controls = self._controls(context=context)
        kinds, channels = dict(NoticeKind.choices), dict(ChannelName.choices)
        table_rows = []
        for row in rows:
            control = controls.get(row["step"]) if row["step"] is not None else None
            table_rows.append([
                str(kinds.get(row["kind"], row["kind"])), str(channels.get(row["channel"], row["channel"])),
                "—" if row["step"] is None else row["step"], row["sent"], row["paid"], Ratio(row["paid"], row["sent"]),
                control[0] if control else 0, Ratio(control[1], control[0]) if control else Ratio(0, 0),
            ])  # fmt: skip
        section = Section(slug="reminders", title=_("Reminder yield"))
        section.tables.append(
            Table(
                slug="reminder_yield",
                title=_("Notices sent and bills paid within 72 hours"),
                note=_("Bill notices sent in the period, by kind, channel and schedule step (days from the due date): "
                       "how many went out, and how many of their bills got a payment within 72 hours of the notice. "
                       "Beside it, bills whose step came in the period with no notice sent at that step (the payer "
                       "opted out, or the step was skipped), still unpaid that day, and how many of those were paid "
                       "within 72 hours."),
                columns=[_("Notice"), _("Channel"), _("Step (days)"), _("Sent"), _("Paid within 72 h"),
                         _("Yield %"), _("Same-age bills without a notice"), _("Their yield %")],
                rows=table_rows,
                chart=Chart(value_columns=[5, 7], description=_("Share of bills paid within 72 hours, with and "
                                                                "without a notice, per notice, channel and step.")),
            )  # fmt: skip
        )
        missing = sorted({r["step"] for r in rows if r["step"] is not None and not controls.get(r["step"], (0,))[0]})
        if missing:
            section.caveats.append(
                _("No comparison for step(s) %(steps)s: every bill of that age got a notice, so there is no bill "
                  "without one to compare with.") % {"steps": ", ".join(str(s) for s in missing)}
            )
        if not rows:
            section.caveats.append(_("No bill notice was sent in the period."))
        return [section]

    def _controls(self, *, context: InsightContext) -> dict[int, tuple[int, int]]:
        """Per schedule step: bills whose step came in the period with no notice sent at that step, unpaid that day,
        and how many of them were paid within 72 hours. One query: an inner one reads each bill once (its first
        payment, and whether each step's notice went out), the outer one counts per step."""
        biller, period = context.biller, context.period
        steps = schedule_steps(biller)
        if not steps:
            return {}
        # Bills whose some step falls in the period; each is read once, whatever the number of steps.
        bills = (
            Bill.objects.filter(
                biller=biller, issue_date__isnull=False,
                due_date__gte=period.start - dt.timedelta(days=max(steps)),
                due_date__lte=period.end - dt.timedelta(days=min(steps)),
            )  # fmt: skip
            .exclude(status__in=(Bill.Status.DRAFT, Bill.Status.VOID))
            .values("pk")
            .annotate(
                due=Min("due_date"), issued=Min("issue_date"),
                first_paid=Min("allocations__payment__received_at",
                               filter=Q(allocations__payment__status="succeeded")),
                **{f"noticed{i}": Exists(Notification.objects.filter(
                    bill=OuterRef("pk"), step=step, kind=reminder_kind(step), status=Notification.Status.SENT
                )) for i, step in enumerate(steps)},
            )  # fmt: skip
        )
        aggregates = {}
        for i, step in enumerate(steps):
            moment = ExpressionWrapper(F("due") + Value(dt.timedelta(days=step)), output_field=DateTimeField())
            came = Q(due__gte=period.start - dt.timedelta(days=step), due__lte=period.end - dt.timedelta(days=step))
            issued_by_then = Q(issued__lte=ExpressionWrapper(F("due") + Value(dt.timedelta(days=step)),
                                                            output_field=DateField()))  # fmt: skip
            unpaid_then = Q(first_paid__isnull=True) | Q(first_paid__gte=moment)
            unnoticed = came & issued_by_then & Q(**{f"noticed{i}": False}) & unpaid_then
            paid_soon = Q(first_paid__gte=moment,
                          first_paid__lt=ExpressionWrapper(moment + Value(WINDOW), output_field=DateTimeField()))
            aggregates[f"n{i}"] = Count("pk", filter=unnoticed)
            aggregates[f"p{i}"] = Count("pk", filter=unnoticed & paid_soon)
        totals = bills.aggregate(**aggregates)
        return {step: (totals[f"n{i}"], totals[f"p{i}"]) for i, step in enumerate(steps)}
