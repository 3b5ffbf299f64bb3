"""The reminder planner: outbox rows for every open bill's due reminder steps and new-bill notices. Beat runs it
hourly; services.py sends what it writes.

Catch-up rule (beat or the workers were down):
- Only the latest reminder step whose day has come is sent; earlier steps that never went out are recorded as skipped.
- "Due in N days" goes out only before the due date, "due today" only on the due date, in the biller's time zone.
- A past-due step goes out at most `catch_up_days` (NoticePolicy, default 2) after its day; after that it is skipped.
- A new-bill notice goes out at most `catch_up_days` after the issue date.
The same checks run again just before sending (services.py), so a row delayed by an outage or quiet hours cannot say
something stale.
"""

import datetime as dt
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.clock import biller_today, biller_zone
from billing.models import Bill
from billing.plans.selectors import bills_in_good_standing_plans

from .channels import channel_names
from .models import NoticeKind, NoticePolicy, Notification
from .preferences import Policy, channel_wanted, outside_quiet_hours, quiet_hours_for
from .services import chunk_peers, dedupe_key

Status = Notification.Status


def reminder_kind(step: int) -> str:
    if step < 0:
        return NoticeKind.DUE_UPCOMING
    if step == 0:
        return NoticeKind.DUE_TODAY
    return NoticeKind.PAST_DUE


def schedule_steps(biller) -> list[int]:
    steps = {s for s in (biller.reminder_schedule or []) if isinstance(s, int) and not isinstance(s, bool)}
    return sorted(steps)


@dataclass
class PlanResult:
    bills: int = 0
    chunks: int = 0
    rows: int = 0  # rows offered to bulk_create; existing keys are ignored by the database
    queries_per_chunk: list[int] = field(default_factory=list)


def policies_load() -> dict[int, Policy]:
    return {row.biller_id: Policy.of(row) for row in NoticePolicy.objects.all()}


def step_verdict(*, step: int, due_date: dt.date, today: dt.date, latest: int, catch_up_days: int) -> str:
    """ "send" or why not, for a reminder step whose day (due_date + step) has come. The catch-up rule, in one place."""
    day = due_date + dt.timedelta(days=step)
    if step != latest:
        return "a later reminder step has come"
    if step < 0 and today >= due_date:
        return "the due date has come"
    if step == 0 and today != due_date:
        return "the due date has passed"
    if (today - day).days > catch_up_days:
        return f"{(today - day).days} days late, more than the {catch_up_days} allowed"
    return "send"


def reminders_plan(
    *, today: dt.date | None = None, now: dt.datetime | None = None, chunk_size: int = 500, count_queries: bool = False
) -> PlanResult:
    """Write outbox rows for every open bill's due reminder steps and new-bill notices. Safe to run any number of
    times: the unique dedupe key makes a second run add nothing.

    Walks open bills by primary key in chunks; each chunk costs the same few queries (bills, preferences, settings,
    opt-outs, keys already written, one bulk insert) however many bills there are in all. `today` overrides every biller's local date (tests, backfills);
    by default each biller's own time zone decides it.
    """
    now = now or timezone.now()
    policies = policies_load()
    result = PlanResult()
    last_pk = 0
    while True:
        if count_queries:
            from django.db import connection
            from django.test.utils import CaptureQueriesContext

            capture = CaptureQueriesContext(connection)
            capture.__enter__()
        bills = list(
            Bill.objects.filter(status=Bill.Status.OPEN, amount_paid__lt=F("total"), pk__gt=last_pk)
            .select_related("account", "biller")
            .only(
                "pk", "due_date", "issue_date", "status", "biller_id", "account_id",
                "biller__time_zone", "biller__reminder_schedule",
                "account__email", "account__phone", "account__email_notices", "account__sms_notices",
            )
            .order_by("pk")[:chunk_size]
        )  # fmt: skip
        if not bills:
            if count_queries:
                capture.__exit__(None, None, None)
            break
        last_pk = bills[-1].pk
        rows = _plan_chunk(bills=bills, today=today, now=now, policies=policies)
        if rows:
            # Most runs find most rows already written: drop those here (one read) rather than have the database
            # reject each one. The unique key still settles a race with a concurrent planner.
            existing = set(
                Notification.objects.filter(bill_id__in=[b.pk for b in bills]).values_list("dedupe_key", flat=True)
            )
            rows = [r for r in rows if r.dedupe_key not in existing]
        if rows:
            # Written in one transaction so a chunk is all-or-nothing; ignore_conflicts makes re-planning a no-op.
            with transaction.atomic():
                Notification.objects.bulk_create(rows, ignore_conflicts=True, batch_size=insert_batch_size())
        result.bills += len(bills)
        result.chunks += 1
        result.rows += len(rows)
        if count_queries:
            capture.__exit__(None, None, None)
            result.queries_per_chunk.append(len(capture.captured_queries))
        if len(bills) < chunk_size:
            break
    return result


def insert_batch_size() -> int | None:
    from django.db import connection

    # SQLite: Django splits by SQLite's parameter limit (999). PostgreSQL: a chunk's rows in one INSERT, up to 2,000
    # rows (34,000 parameters, under the protocol's 65,535).
    return None if connection.vendor == "sqlite" else 2000


def _plan_chunk(*, bills, today, now, policies) -> list[Notification]:
    accounts = {b.account_id: b.account for b in bills}
    peers = chunk_peers(list(accounts.values()))
    # Bills on a payment plan in good standing get the plan's instalment reminders instead of due and past-due ones;
    # when the plan breaks or is cancelled they are reminded as usual again (the catch-up rule applies).
    on_plan = bills_in_good_standing_plans(bill_ids=[b.pk for b in bills])
    rows: list[Notification] = []
    for bill in bills:
        biller, account = bill.biller, bill.account
        policy = policies.get(bill.biller_id) or Policy.of(None)
        local_today = today or biller_today(biller, now=now)
        quiet = quiet_hours_for(policy=policy, biller=biller, settings_row=peers.settings_rows.get(account.pk))

        def add(kind, step, verdict, send_at):
            for channel in channel_names():
                if not channel_wanted(
                    account=account, kind=kind, channel=channel, policy=policy, choices=peers.choices,
                    opted_out=peers.opted_out,
                ):  # fmt: skip
                    continue
                rows.append(_row(bill=bill, kind=kind, channel=channel, step=step, verdict=verdict, send_at=send_at,
                                 now=now, quiet=quiet))  # fmt: skip

        if bill.issue_date and 0 <= (local_today - bill.issue_date).days <= policy.catch_up_days:
            add(NoticeKind.BILL_ISSUED, None, "send", now)

        steps = [s for s in schedule_steps(biller) if bill.due_date + dt.timedelta(days=s) <= local_today]
        if not steps or bill.pk in on_plan:
            continue
        latest = steps[-1]
        send_at = _scheduled_time(local_today, policy, biller, now)
        for step in steps:
            verdict = step_verdict(
                step=step, due_date=bill.due_date, today=local_today, latest=latest, catch_up_days=policy.catch_up_days
            )
            add(reminder_kind(step), step, verdict, send_at)
    return rows


def _scheduled_time(day: dt.date, policy: Policy, biller, now: dt.datetime) -> dt.datetime:
    """The biller's send time on `day`, in its zone; now if that time has already passed."""
    planned = dt.datetime.combine(day, policy.send_time, tzinfo=biller_zone(biller))
    return max(planned, now)


def _row(*, bill, kind, channel, step, verdict, send_at, now, quiet) -> Notification:
    common = dict(
        dedupe_key=dedupe_key(kind=kind, channel=channel, bill=bill, step=step),
        biller_id=bill.biller_id, account_id=bill.account_id, bill_id=bill.pk, kind=kind, channel=channel, step=step,
    )  # fmt: skip
    if verdict != "send":
        return Notification(**common, status=Status.SKIPPED, send_at=now, last_error=f"not sent: {verdict}")
    at = outside_quiet_hours(send_at, quiet)
    return Notification(**common, status=Status.PENDING, send_at=at, next_attempt_at=at)


def plan_reminders_plan(*, now: dt.datetime | None = None) -> int:
    """Reminders for instalments paid by hand: a few days before and on the day (billing.plans.selectors
    INSTALMENT_REMINDER_STEPS), once each (the outbox key names the plan, the instalment and the step). Returns the
    rows written."""
    from billing.plans.selectors import instalments_to_remind

    from .services import notice_enqueue

    now = now or timezone.now()
    written = 0
    for plan, instalment, step in instalments_to_remind(today_of=lambda biller: biller_today(biller, now=now)):
        bill = Bill.objects.filter(plan_bills__plan=plan).order_by("due_date", "pk").first()
        rows = notice_enqueue(kind=NoticeKind.PLAN_INSTALMENT_DUE, account=plan.account, bill=bill, plan=plan,
                              instalment=instalment.number, step=step, now=now)  # fmt: skip
        written += len(rows)
    return written
