"""Data for the load test, made through the services in the cluster's own database (production settings, run by
bench/load/run_load.py with the cluster's environment). Prints JSON for the locustfile:

- `pay`: accounts with one open bill each and its pay-link token, for payments (each is paid at most once);
- `browse`: pay-link tokens for the pay screens;
- `lookup`: account number and postal code pairs;
- `payers`: signed-in payers (verified e-mail, password) with their linked account.
"""

import argparse
import datetime as dt
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import django  # noqa: E402

django.setup()

from allauth.account.models import EmailAddress  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import transaction  # noqa: E402

from accounts.services import account_link_grant  # noqa: E402
from billing.bills.paylinks import pay_token  # noqa: E402
from billing.bills.services import LineInput, bill_create, bill_issue, customer_account_create  # noqa: E402
from billing.models import Biller  # noqa: E402

PAYER_PASSWORD = "load-Test-password-2026"


def account_with_bill(biller, number: str, index: int, today: dt.date):
    account = customer_account_create(
        biller=biller, account_number=number, holder_name=f"Load Payer {index}", postal_code=f"7{index % 10000:04d}",
        address_line1=f"{index} Load Street", city="Riverside", email=f"load{index}@example.com",
    )  # fmt: skip
    bill = bill_create(
        account=account, number=f"LOAD-{number}", period_start=today - dt.timedelta(days=30),
        period_end=today - dt.timedelta(days=1), due_date=today + dt.timedelta(days=14),
        lines=[LineInput(description="Water", amount=1000 + (index * 37) % 9000)],
    )  # fmt: skip
    return account, bill_issue(bill=bill)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pay", type=int, default=400)
    parser.add_argument("--browse", type=int, default=100)
    parser.add_argument("--payers", type=int, default=40)
    args = parser.parse_args()
    # The demo's biller when the cluster seeded it; else one of our own (the cluster test skips the demo data).
    biller = Biller.objects.order_by("pk").first() or Biller.objects.create(
        slug="load-test-water", name="Load Test Water", currency="USD", support_email="help@load.example"
    )
    today = dt.date.today()
    out = {"pay": [], "browse": [], "lookup": [], "payers": [], "password": PAYER_PASSWORD}
    index = 0
    with transaction.atomic():
        for group, count in (("pay", args.pay), ("browse", args.browse), ("payers", args.payers)):
            for _ in range(count):
                index += 1
                account, bill = account_with_bill(biller, f"9{index:07d}", index, today)
                if group == "payers":
                    email = f"load-payer{index}@example.com"
                    user = get_user_model().objects.create_user(email=email, password=PAYER_PASSWORD)
                    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
                    account_link_grant(user=user, account=account, via="lookup")
                    out["payers"].append({"email": email, "account_id": account.pk, "bill_id": bill.pk})
                else:
                    out[group].append({"token": pay_token(bill), "account_id": account.pk, "bill_id": bill.pk})
                if group == "browse":
                    out["lookup"].append({"account_number": account.account_number, "postal_code": account.postal_code})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
