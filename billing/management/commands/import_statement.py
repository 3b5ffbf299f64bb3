"""manage.py import_statement FILE --biller SLUG [--dry-run]: import a bank statement and match its lines."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from billing.banking.formats import StatementFileError
from billing.banking.statements import report_lines, statement_match, statement_preview, statement_store
from billing.models import Biller


class Command(BaseCommand):
    help = "Import a bank statement (camt.053, MT940, BAI2 or CSV; detected from the content) and match its lines."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--biller", required=True, help="The biller's slug.")
        parser.add_argument("--dry-run", action="store_true", help="Say what would happen; write nothing.")

    def handle(self, *args, file: Path, biller: str, dry_run: bool, **options):
        found = Biller.objects.filter(slug=biller).first()
        if found is None:
            raise CommandError(f"No biller with the slug {biller!r}.")
        try:
            content = file.read_bytes()
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error}") from None
        try:
            if dry_run:
                report = statement_preview(biller=found, content=content)
            else:
                statement = statement_store(biller=found, filename=file.name, content=content)
                report = statement_match(
                    statement=statement, progress=lambda done: self.stderr.write(f"matched {done} lines")
                ).report
        except StatementFileError as error:
            for problem in error.errors:
                where = f"line {problem.line}: " if problem.line else ""
                self.stderr.write(f"{where}{problem.message}")
            raise CommandError(f"{error.message} Nothing was imported.") from None
        if dry_run:
            self.stdout.write("dry run: nothing was written")
        for text in report_lines(report):
            self.stdout.write(text)
