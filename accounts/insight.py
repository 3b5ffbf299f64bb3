"""The portal's figures for the staff insight page: payer sign-ins per active account (adoption, with its 12-month
trend) and the invitation funnel, sent → link used → enrolled, by kind and by batch.

Registered as an insight source in AccountsConfig.ready() (billing never imports accounts). Three queries whatever
the number of accounts, sign-ins or invitations.
"""

from __future__ import annotations

from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.functions import TruncMonth
from django.utils.translation import gettext as _

from billing.insight.report import Chart, Figure, Ratio, Section, Table
from billing.insight.sources import InsightContext
from billing.models import AutopayEnrollment, PaperlessEnrollment

from .models import AccountLink, Invitation, InvitationKind, PortalSignIn


class PortalAdoption:
    def sections(self, *, context: InsightContext) -> list[Section]:
        return [self._sign_ins(context=context), self._invitations(context=context)]

    def _sign_ins(self, *, context: InsightContext) -> Section:
        biller, months = context.biller, context.period.trend_months()
        (start, end), (prev_start, _prev_end) = context.bounds(context.period), context.bounds(context.previous)
        trend_start = context.day_start(months[0])
        # A login linked to two of the biller's accounts signs in once: count sign-in rows, not join rows.
        sign_ins = PortalSignIn.objects.filter(user__account_links__customer_account__biller=biller)
        totals = sign_ins.filter(created_at__gte=prev_start, created_at__lt=end).aggregate(
            now=Count("pk", distinct=True, filter=Q(created_at__gte=start)),
            before=Count("pk", distinct=True, filter=Q(created_at__lt=start)),
        )
        by_month = {
            row["month"].date() if hasattr(row["month"], "date") else row["month"]: row["n"]
            for row in sign_ins.filter(created_at__gte=trend_start, created_at__lt=end)
            .annotate(month=TruncMonth("created_at"))
            .values("month")
            .annotate(n=Count("pk", distinct=True))
            .order_by("month")
        }
        section = Section(slug="adoption", title=_("Adoption"))
        section.figures.append(
            Figure(
                _("Portal sign-ins per account"),
                Ratio(totals["now"], context.active_accounts, as_percent=False),
                Ratio(totals["before"], context.active_accounts_previous, as_percent=False),
                _("Sign-ins per account: payer sign-ins to the portal in the period, by logins linked to the "
                  "biller's accounts (%(count)s) ÷ active accounts.") % {"count": totals["now"]},
            )  # fmt: skip
        )
        section.tables.append(
            Table(
                slug="sign_ins_trend",
                title=_("Portal sign-ins per account, month by month"),
                note=_("For each of the 12 months ending with the period: payer sign-ins by logins linked to the "
                       "biller's accounts, and that number ÷ the month's active accounts."),
                columns=[_("Month"), _("Sign-ins"), _("Active accounts"), _("Sign-ins per account")],
                rows=[
                    [first.strftime("%Y-%m"), by_month.get(first, 0), context.active_by_month.get(first, 0),
                     Ratio(by_month.get(first, 0), context.active_by_month.get(first, 0), as_percent=False)]
                    for first in months
                ],
                chart=Chart(value_columns=[3], description=_("Portal sign-ins per active account, by month.")),
            )  # fmt: skip
        )
        return section

    def _invitations(self, *, context: InsightContext) -> Section:
        start, end = context.bounds(context.period)
        account, sent_at = OuterRef("customer_account"), OuterRef("sent_at")
        joined = Exists(AccountLink.objects.filter(
            customer_account=account, created_at__gte=sent_at,
            created_via__in=(AccountLink.Via.INVITED_EMAIL, AccountLink.Via.INVITATION),
        ))  # fmt: skip
        paperless = Exists(PaperlessEnrollment.objects.filter(
            account=account, consented_at__gte=sent_at, via=PaperlessEnrollment.Via.INVITATION
        ))  # fmt: skip
        autopay = Exists(AutopayEnrollment.objects.filter(account=account, consented_at__gte=sent_at))
        enrolled = (
            (Q(kind=InvitationKind.JOIN) & Q(joined))
            | (Q(kind=InvitationKind.PAPERLESS) & Q(paperless))
            | (Q(kind=InvitationKind.AUTOPAY) & Q(autopay))
        )
        rows = list(
            Invitation.objects.filter(customer_account__biller=context.biller, created_at__gte=start, created_at__lt=end)
            .values("kind", "batch")
            .annotate(
                made=Count("pk"),
                sent=Count("pk", filter=Q(sent_at__isnull=False)),
                used=Count("pk", filter=Q(used_at__isnull=False)),
                enrolled=Count("pk", filter=Q(sent_at__isnull=False) & enrolled),
            )
            .order_by("kind", "batch")
        )
        labels = dict(InvitationKind.choices)
        by_kind: dict[str, dict] = {}
        for row in rows:
            slot = by_kind.setdefault(row["kind"], {"sent": 0, "used": 0, "enrolled": 0})
            for name in slot:
                slot[name] += row[name]

        def funnel(label, counts):
            return [label, counts["sent"], counts["used"], counts["enrolled"], Ratio(counts["used"], counts["sent"]),
                    Ratio(counts["enrolled"], counts["sent"])]  # fmt: skip

        columns = [_("Sent"), _("Link used"), _("Enrolled"), _("Used %"), _("Enrolled %")]
        section = Section(slug="invitations", title=_("Invitations"))
        section.tables.append(
            Table(
                slug="invitations_by_kind",
                title=_("Invitation funnel by kind"),
                note=_("Invitations created in the period: how many were e-mailed, how many links were used, and how "
                       "many accounts enrolled after the e-mail (joined the portal, went paperless through an "
                       "invitation, or turned autopay on)."),
                columns=[_("Invitation to"), *columns],
                rows=[funnel(str(label), by_kind.get(kind, {"sent": 0, "used": 0, "enrolled": 0}))
                      for kind, label in InvitationKind.choices],
                chart=Chart(value_columns=[1, 2, 3], description=_("Invitations sent, links used and enrolments, "
                                                                   "by kind.")),
            )  # fmt: skip
        )
        section.tables.append(
            Table(
                slug="invitations_by_batch",
                title=_("Invitation funnel by batch"),
                note=_("The same funnel for each batch staff sent in the period; invitations sent one by one are "
                       "grouped as “single”."),
                columns=[_("Batch"), _("Invitation to"), *columns],
                rows=[
                    [f"#{row['batch']}" if row["batch"] else _("single"), str(labels.get(row["kind"], row["kind"])),
                     *funnel("", row)[1:]]
                    for row in rows
                ],
            )  # fmt: skip
        )
        return section
