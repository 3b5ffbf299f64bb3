"""manage.py import_bills FILE --biller SLUG [--dry-run]: the same import as the admin's "Upload bills" page."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from billing.bills.csv_rows import ImportFileError, RowError, bill_import_file_read
from billing.bills.imports import bill_import_batch_create, bill_import_run, bills_import
from billing.models import Biller


class Command(BaseCommand):
    help = "Import bills from a CSV file (see docs/import-format.md). All or nothing: any error imports nothing."

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file, UTF-8 with or without a byte-order mark")
        parser.add_argument("--biller", required=True, help="slug of the biller the bills belong to")
        parser.add_argument("--dry-run", action="store_true", help="check the file and report, write nothing")

    def handle(self, *args, file, biller, dry_run, **options):
        path = Path(file)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}") from None
        biller_obj = Biller.objects.filter(slug=biller).first()
        if biller_obj is None:
            raise CommandError(f"No biller with slug “{biller}”.")

        try:
            if dry_run:
                result = bills_import(biller=biller_obj, csv_file=bill_import_file_read(content=content), dry_run=True)
                errors, counts = result.errors, result
            else:
                batch = bill_import_run(
                    batch=bill_import_batch_create(biller=biller_obj, filename=path.name, content=content)
                )
                errors = [RowError(**error) for error in batch.errors]
                counts = batch
        except ImportFileError as exc:
            errors, counts = exc.errors, None
        if errors:
            report = "\n".join(f"  {error}" for error in errors)
            raise CommandError(f"{path.name}: {len(errors)} problem(s), nothing was imported.\n{report}")

        verb = "would create" if dry_run else "created"
        self.stdout.write(
            self.style.SUCCESS(
                f"{path.name}: {counts.total_rows} rows; {verb} {counts.accounts_created} accounts and "
                f"{counts.bills_created} bills; {counts.bills_skipped} bills were already imported."
            )
        )
