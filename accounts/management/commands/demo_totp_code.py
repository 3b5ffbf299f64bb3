from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.demo import DEMO_STAFF_EMAIL, DEMO_STAFF_EMAILS, demo_totp_code


class Command(BaseCommand):
    help = "Local demo only: print the current two-factor code of a demo staff login (instead of an authenticator app)."

    def add_arguments(self, parser):
        parser.add_argument("--email", default=DEMO_STAFF_EMAIL, help=f"One of: {', '.join(DEMO_STAFF_EMAILS)}.")

    def handle(self, *args, email, **options):
        # A code printer defeats the second factor, so it answers only for the demo logins of a DEBUG (local) run.
        if not settings.DEBUG:
            raise CommandError("This command is for the local demo only (DJANGO_DEBUG=true).")
        if email not in DEMO_STAFF_EMAILS:
            raise CommandError(f"{email} is not a demo staff login ({', '.join(DEMO_STAFF_EMAILS)}).")
        try:
            self.stdout.write(demo_totp_code(email=email))
        except KeyError:
            raise CommandError("The demo is not seeded yet: run manage.py seed_demo first.") from None
