"""manage.py export_payments --biller SLUG --date YYYY-MM-DD [--output FILE]: the daily payments posting file, the
same CSV as the insight page's download, for a scheduled job that feeds the biller's billing system."""

import datetime as dt
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from billing.insight.exports import posting_csv
from billing.models import Biller


class Command(BaseCommand):
    help = (
        "Write the payments posting file of one day: one line per payment, refund and reversal (account, bill, "
        "amount, currency, date, channel, method, confirmation number). Days are the biller's calendar days."
    )

    def add_arguments(self, parser):
        parser.add_argument("--biller", required=True, help="slug of the biller")
        parser.add_argument("--date", required=True, help="the day, YYYY-MM-DD")
        parser.add_argument("--output", help="write to this file instead of standard output")

    def handle(self, *args, biller, date, output=None, **options):
        try:
            day = dt.date.fromisoformat(date)
        except ValueError:
            raise CommandError(f"“{date}” is not a date; use YYYY-MM-DD.") from None
        biller_obj = Biller.objects.filter(slug=biller).first()
        if biller_obj is None:
            raise CommandError(f"No biller with slug “{biller}”.")
        text = posting_csv(biller=biller_obj, day=day)
        if output:
            Path(output).write_text(text, encoding="utf-8")
        else:
            self.stdout.write(text, ending="")
