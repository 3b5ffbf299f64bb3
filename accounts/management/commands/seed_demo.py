import json

from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.demo import (
    DEMO_CLERK_EMAIL,
    DEMO_PAYER_PASSWORD,
    DEMO_PLAN_PAYER_EMAIL,
    DEMO_STAFF_EMAIL,
    DEMO_STAFF_PASSWORD,
    DEMO_SEPA_PAYER_EMAIL,
    DEMO_SEPA_PAYER_PASSWORD,
    demo_accounts,
    demo_seed,
    demo_sepa_biller,
    demo_staff_totp_secrets,
)
from accounts.demo_history import demo_history_seed


class Command(BaseCommand):
    help = "Seed one demo biller with accounts and bills in every state. Safe to run again: it adds nothing twice."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the demo accounts as JSON, and nothing else.")

    def handle(self, *args, **options):
        call_command("setup_roles", verbosity=0)  # the demo clerk joins the Clerk role
        result = demo_seed()
        demo_history_seed(biller=result.biller)  # twelve months of history for the staff insight page
        accounts = demo_accounts(biller=result.biller)
        sepa = demo_sepa_biller()
        if sepa is not None:  # the bank-debit demo account, with its bank mandate under "payment_methods"
            accounts += demo_accounts(biller=sepa)
        if options["json"]:
            self.stdout.write(json.dumps(accounts, indent=2))
            return
        self.stdout.write(
            f"Seeded {result.biller.name}: {result.accounts_created} new accounts, {result.bills_created} new bills."
        )
        self.stdout.write(f"Staff login: {DEMO_STAFF_EMAIL} / {DEMO_STAFF_PASSWORD} (billing admin)")
        self.stdout.write(f"Clerk login: {DEMO_CLERK_EMAIL} / {DEMO_STAFF_PASSWORD}")
        self.stdout.write(
            "Staff sign in with a second factor: add a secret below to an authenticator app, or run "
            "`manage.py demo_totp_code --email <login>` for the current code."
        )
        for email, secret in demo_staff_totp_secrets().items():
            self.stdout.write(f"  {email}: {secret}")
        self.stdout.write(f"Payer login with a payment plan: {DEMO_PLAN_PAYER_EMAIL} / {DEMO_PAYER_PASSWORD}")
        self.stdout.write("Demo accounts (account number · postal code · open balance):")
        for row in [a for a in accounts if a["open_balance_minor"] > 0][:6]:
            self.stdout.write(f"  {row['account_number']} · {row['postal_code']} · {row['open_balance']}  {row['holder_name']}")
        self.stdout.write(
            f"Bank-debit demo (Rhein Stadtwerke, EUR): payer login {DEMO_SEPA_PAYER_EMAIL} / {DEMO_SEPA_PAYER_PASSWORD}"
            ", a saved bank account under an active SEPA mandate."
        )
