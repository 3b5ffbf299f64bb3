from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.staff import staff_totp_enrol
from billing.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Enrol a TOTP authenticator for the first superuser (or --email): every staff login needs one to open the "
        "admin. Prints the otpauth URI, the secret and the recovery codes, once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--email", help="The staff login to enrol (default: the first superuser).")
        parser.add_argument("--reset", action="store_true", help="Replace an existing authenticator.")

    def handle(self, *args, email=None, reset=False, **options):
        users = get_user_model().objects
        if email:
            user = users.filter(email__iexact=email.strip()).first()
            if user is None:
                raise CommandError(f"No login with the e-mail address {email}.")
        else:
            user = users.filter(is_superuser=True, is_active=True).order_by("pk").first()
            if user is None:
                raise CommandError("There is no superuser yet: run manage.py createsuperuser first.")
        try:
            enrolment = staff_totp_enrol(user=user, reset=reset)
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"Two-factor sign-in enrolled for {user.email}.")
        self.stdout.write("Add it to an authenticator app with this URI (or a QR code made from it):")
        self.stdout.write(f"  {enrolment.otpauth_url}")
        self.stdout.write(f"or type the secret by hand: {enrolment.secret}")
        self.stdout.write("Recovery codes, each good once if the authenticator is lost. Keep them offline:")
        for code in enrolment.recovery_codes:
            self.stdout.write(f"  {code}")
        self.stdout.write("They are not shown again; run this command with --reset to replace everything.")
