"""Show what the outbox holds and what is due; `--plan` runs the planner and `--sweep` one sweep, by hand."""

from django.core.management.base import BaseCommand
from django.utils import timezone

from notifications.selectors import notification_counts, notifications_due
from notifications.planner import reminders_plan
from notifications.services import notifications_sweep


class Command(BaseCommand):
    help = "List due notifications; optionally plan reminders and run one sweep (claims due rows, enqueues sends)."

    def add_arguments(self, parser):
        parser.add_argument("--plan", action="store_true", help="Plan reminders for open bills first.")
        parser.add_argument("--sweep", action="store_true", help="Run one sweep: claim due rows and enqueue them.")
        parser.add_argument("--limit", type=int, default=20, help="How many due rows to list (default 20).")

    def handle(self, *args, plan=False, sweep=False, limit=20, **options):
        now = timezone.now()
        if plan:
            result = reminders_plan(now=now)
            self.stdout.write(
                f"planned: {result.bills} open bills in {result.chunks} chunks, {result.rows} rows offered"
            )
        for row in notification_counts():
            self.stdout.write(f"{row['status']:>8} {row['channel']:<6} {row['rows']}")
        due = notifications_due(now=now).select_related("account")
        total = due.count()
        self.stdout.write(f"due now: {total}")
        for n in due[:limit]:
            self.stdout.write(f"  {n.pk:>8} {n.dedupe_key:<48} {n.next_attempt_at:%Y-%m-%d %H:%M} {n.account}")
        if sweep:
            result = notifications_sweep(now=now)
            self.stdout.write(
                self.style.SUCCESS(
                    f"swept: {len(result.claimed)} claimed and enqueued, {result.reclaimed} reclaimed, "
                    f"{result.failed_lost} failed after a lost worker"
                )
            )
