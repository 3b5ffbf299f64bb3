"""Demo data for the local run and for browser tests: one biller, a few dozen accounts, bills in every state.

Everything is keyed by natural keys (biller slug, account number, bill number), so seeding twice adds nothing.
"""

import datetime as dt
import random
from dataclasses import dataclass

from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from billing.bills.paylinks import bill_pay_url
from billing.bills.services import (
    LineInput,
    bill_create,
    bill_issue,
    bill_mark_uncollectible,
    bill_void,
    customer_account_create,
)
from billing.management.commands.setup_roles import CLERK
from billing.models import (
    BankMandate, Bill, Biller, CustomerAccount, Payment, PaymentMethod, PaymentPlan, PlanRules,
)  # fmt: skip
from billing.money import format_money
from billing.payments.gateway import MandateAcceptance
from billing.payments.mandates import bank_account_check, mandate_record, mandate_status_move, mandate_text
from billing.payments.offline import payment_record_offline
from billing.plans.selectors import plans_by_account
from billing.plans.services import plan_agree, plan_agreement_text, plan_create

from .models import AccountLink
from .staff import staff_has_totp, staff_totp_enrol, staff_totp_secret

DEMO_BILLER_SLUG = "riverside"
DEMO_STAFF_EMAIL = "admin@billpay.localhost"
DEMO_CLERK_EMAIL = "clerk@billpay.localhost"
DEMO_STAFF_PASSWORD = "billpay-demo-admin"  # local demo only; production never runs the seed
DEMO_STAFF_EMAILS = (DEMO_STAFF_EMAIL, DEMO_CLERK_EMAIL)
DEMO_ACCOUNT_COUNT = 36
# One account pays its balance on a payment plan: its payer's login, and the plan's schedule.
DEMO_PLAN_ACCOUNT_INDEX = 2  # an overdue bill and an open one (_states_for)
DEMO_PLAN_PAYER_EMAIL = "plan.payer@example.com"
DEMO_PAYER_PASSWORD = "billpay-demo-payer"  # local demo only
# Bank debits need euros and a SEPA creditor identifier: a second, small demo biller with one payer who saved a bank
# account under a standing mandate. Its payment method id is a placeholder (the seed never calls the gateway): to
# debit for real, save a bank account through the autopay page.
DEMO_SEPA_BILLER_SLUG = "rhein-stadtwerke"
DEMO_SEPA_ACCOUNT = "DE-7700100"
DEMO_SEPA_PAYER_EMAIL = "jana@billpay.localhost"
DEMO_SEPA_PAYER_PASSWORD = "billpay-demo-payer"  # local demo only
DEMO_SEPA_IBAN = "DE89370400440532013000"  # Stripe's test IBAN (debits succeed)

FIRST = ["Amira", "Ben", "Carmen", "Dariush", "Elena", "Farid", "Grace", "Hassan", "Ines", "Jonah", "Kaveh", "Lina"]
LAST = ["Haddad", "Okafor", "Silva", "Moradi", "Novak", "Rahimi", "Chen", "Mansour", "Garcia", "Schmidt", "Tehrani"]
STREETS = ["Elm St", "River Rd", "Cedar Ave", "Lakeview Dr", "Mill Ln", "Orchard Way"]


@dataclass
class SeedResult:
    biller: Biller
    accounts_created: int
    bills_created: int


def _lines(rng: random.Random) -> list[LineInput]:
    water = rng.randint(2400, 9800)
    sewer = rng.randint(1500, 4200)
    base = 1250
    return [
        LineInput(description="Base service charge", amount=base),
        LineInput(description="Water usage", quantity=rng.randint(4, 19), unit_amount=round(water / 10)),
        LineInput(description="Sewer", amount=sewer, tax_amount=round(sewer * 0.05)),
    ]


def _states_for(index: int) -> list[str]:
    """Which bills an account gets, oldest first: a mix so that every status and an overdue bill all appear."""
    patterns = [
        ["paid", "open"],
        ["paid", "paid", "open"],
        ["overdue", "open"],
        ["paid", "partial"],
        ["paid", "void", "open"],
        ["uncollectible", "open"],
        ["paid", "draft"],
        ["paid", "paid"],
    ]
    return patterns[index % len(patterns)]


@transaction.atomic
def demo_seed(*, today: dt.date | None = None) -> SeedResult:
    today = today or timezone.localdate()
    rng = random.Random(20261122)
    biller, _ = Biller.objects.get_or_create(
        slug=DEMO_BILLER_SLUG,
        defaults={
            "name": "Riverside Water & Power",
            "tagline": "Water, sewer and power for the Riverside valley",
            "currency": "USD",
            "time_zone": "America/Chicago",
            "support_email": "help@riverside.example",
            "support_phone": "+1 555 0100",
            "remit_address": "Riverside Water & Power\nPO Box 1200\nRiverside, CA 92501",
            "convenience_fee_fixed": 0,
            "bank_account_name": "Riverside Water & Power",
            "bank_name": "Valley Community Bank",
            "bank_account_number": "4402917730",
            "bank_routing_number": "122000661",
        },
    )
    User = get_user_model()
    if not User.objects.filter(email=DEMO_STAFF_EMAIL).exists():
        User.objects.create_superuser(email=DEMO_STAFF_EMAIL, password=DEMO_STAFF_PASSWORD, name="Demo administrator")
    if not User.objects.filter(email=DEMO_CLERK_EMAIL).exists():
        clerk = User.objects.create_user(
            email=DEMO_CLERK_EMAIL, password=DEMO_STAFF_PASSWORD, name="Demo clerk", is_staff=True
        )
        clerk.groups.add(*Group.objects.filter(name=CLERK))
    # Every staff login needs a second factor, the demo's too: a TOTP secret, printed by seed_demo for an
    # authenticator app (or `manage.py demo_totp_code` prints the current code).
    for staff in User.objects.filter(email__in=DEMO_STAFF_EMAILS).order_by("pk"):
        if not staff_has_totp(user=staff):
            staff_totp_enrol(user=staff)

    accounts_created = bills_created = 0
    for i in range(DEMO_ACCOUNT_COUNT):
        number = f"{4100200 + i * 37:08d}"
        account = CustomerAccount.objects.filter(biller=biller, account_number=number).first()
        if account is None:
            account = customer_account_create(
                biller=biller,
                account_number=number,
                holder_name=f"{FIRST[i % len(FIRST)]} {LAST[(i * 7) % len(LAST)]}",
                postal_code=f"925{i % 10:02d}",
                address_line1=f"{100 + i * 3} {STREETS[i % len(STREETS)]}",
                city="Riverside",
                region="CA",
                email=f"payer{i + 1}@example.com",
                phone=f"+1555{i:07d}",
                language=["en", "en", "es", "ar", "fa"][i % 5] if i >= 5 else "en",
            )
            accounts_created += 1
        states = _states_for(i)
        for k, state in enumerate(states):
            months_back = len(states) - 1 - k
            bill_number = f"RW-{number}-{k + 1:02d}"
            if Bill.objects.filter(biller=biller, number=bill_number).exists():
                continue
            period_end = today.replace(day=1) - dt.timedelta(days=1 + 30 * months_back)
            period_start = period_end - dt.timedelta(days=29)
            due = today + dt.timedelta(days=14 - 30 * months_back) if state != "overdue" else today - dt.timedelta(days=9)
            bill = bill_create(
                account=account,
                number=bill_number,
                period_start=period_start,
                period_end=period_end,
                due_date=due,
                lines=_lines(rng),
            )
            bills_created += 1
            if state == "draft":
                continue
            bill = bill_issue(bill=bill, issue_date=period_end + dt.timedelta(days=2))
            if state == "paid":
                payment_record_offline(account=account, amount=bill.total, method=Payment.Method.CASH)
            elif state == "partial":
                payment_record_offline(
                    account=account, amount=bill.total // 2, method=Payment.Method.CHEQUE, reference=f"{1000 + i}"
                )
            elif state == "void":
                bill_void(bill=bill, reason="Meter misread; rebilled")
            elif state == "uncollectible":
                bill_mark_uncollectible(bill=bill, reason="Account in collections")
    _demo_plan(biller=biller)
    sepa_accounts, sepa_bills = _demo_bank_debit_seed(today=today)
    return SeedResult(
        biller=biller, accounts_created=accounts_created + sepa_accounts, bills_created=bills_created + sepa_bills
    )


@transaction.atomic
def _demo_bank_debit_seed(*, today: dt.date) -> tuple[int, int]:
    """The bank-debit demo: a euro biller, one account with an open bill, and its payer's saved bank account with an
    active standing SEPA mandate. Idempotent like the rest."""
    biller, _ = Biller.objects.get_or_create(
        slug=DEMO_SEPA_BILLER_SLUG,
        defaults={
            "name": "Rhein Stadtwerke", "currency": "EUR", "time_zone": "Europe/Berlin",
            "support_email": "hilfe@rhein-stadtwerke.example", "sepa_creditor_identifier": "DE98ZZZ09999999999",
        },
    )  # fmt: skip
    created_accounts = created_bills = 0
    account = CustomerAccount.objects.filter(biller=biller, account_number=DEMO_SEPA_ACCOUNT).first()
    if account is None:
        account = customer_account_create(
            biller=biller, account_number=DEMO_SEPA_ACCOUNT, holder_name="Jana Novak", postal_code="50667",
            address_line1="Rheinufer 12", city="Köln", region="NRW", email="jana.novak@example.com", language="en",
        )  # fmt: skip
        created_accounts = 1
    number = f"RS-{DEMO_SEPA_ACCOUNT}-01"
    if not Bill.objects.filter(biller=biller, number=number).exists():
        period_end = today.replace(day=1) - dt.timedelta(days=1)
        bill = bill_create(
            account=account, number=number, period_start=period_end - dt.timedelta(days=29), period_end=period_end,
            due_date=today + dt.timedelta(days=14), lines=[LineInput(description="Strom", amount=6480)],
        )  # fmt: skip
        bill_issue(bill=bill, issue_date=period_end + dt.timedelta(days=2))
        created_bills = 1
    User = get_user_model()
    payer = User.objects.filter(email=DEMO_SEPA_PAYER_EMAIL).first()
    if payer is None:
        payer = User.objects.create_user(email=DEMO_SEPA_PAYER_EMAIL, password=DEMO_SEPA_PAYER_PASSWORD, name="Jana Novak")
        EmailAddress.objects.create(user=payer, email=payer.email, verified=True, primary=True)
    AccountLink.objects.get_or_create(
        user=payer, customer_account=account, defaults={"created_via": AccountLink.Via.LOOKUP}
    )
    if not BankMandate.objects.filter(account=account, usage=BankMandate.Usage.MULTI_USE).exists():
        checked = bank_account_check(
            kind="sepa_debit", account_number=DEMO_SEPA_IBAN, holder_name="Jana Novak", holder_email=payer.email
        )
        method = PaymentMethod.objects.create(
            user=payer, kind=PaymentMethod.Kind.SEPA_DEBIT, gateway_customer_id="cus_demo_sepa",
            gateway_payment_method_id="pm_demo_sepa_debit", last4=checked.last4, bank_name=checked.bank_name,
            bank_country=checked.country, holder_name="Jana Novak", holder_email=payer.email, is_default=True,
        )  # fmt: skip
        mandate = mandate_record(
            account=account, checked=checked, gateway_payment_method_id=method.gateway_payment_method_id,
            usage=BankMandate.Usage.MULTI_USE, reference="BPM-DEMO00000001", user=payer, payment_method=method,
            text=mandate_text(biller=biller, usage=BankMandate.Usage.MULTI_USE),
            acceptance=MandateAcceptance(accepted_at=int(timezone.now().timestamp()), ip="127.0.0.1",
                                         user_agent="seed_demo"),
            confirm_by_email=False,
        )  # fmt: skip
        mandate_status_move(mandate=mandate, to=BankMandate.Status.ACTIVE, message="demo data")
    return created_accounts, created_bills


def _demo_plan(*, biller: Biller) -> None:
    """Plans on for the demo biller (10% down, 2–6 monthly or two-weekly instalments), and one account with an active
    plan: its payer agreed to three monthly instalments, to pay by hand, and paid the down payment at the counter."""
    from allauth.account.models import EmailAddress

    from accounts.models import AccountLink
    from accounts.services import account_link_grant

    PlanRules.objects.get_or_create(
        biller=biller,
        defaults={"enabled": True, "min_balance": 5_000, "min_instalment": 1_000, "allow_weekly": False,
                  "down_payment": PlanRules.DownPayment.PERCENT, "down_payment_percent": 10, "grace_days": 5},
    )  # fmt: skip
    number = f"{4100200 + DEMO_PLAN_ACCOUNT_INDEX * 37:08d}"
    account = CustomerAccount.objects.select_related("biller").get(biller=biller, account_number=number)
    if PaymentPlan.objects.filter(account=account).exists():
        return
    User = get_user_model()
    payer = User.objects.filter(email=DEMO_PLAN_PAYER_EMAIL).first()
    if payer is None:
        payer = User.objects.create_user(email=DEMO_PLAN_PAYER_EMAIL, password=DEMO_PAYER_PASSWORD, name="Demo payer")
        EmailAddress.objects.create(user=payer, email=DEMO_PLAN_PAYER_EMAIL, verified=True, primary=True)
    account_link_grant(user=payer, account=account, via=AccountLink.Via.LOOKUP)
    plan = plan_create(account=account, schedule_key="monthly-3", origin=PaymentPlan.Origin.PAYER, actor=payer)
    plan = plan_agree(plan=plan, user=payer, ip="127.0.0.1", agreement_text=plan_agreement_text(plan=plan),
                      pays_by_hand=True)  # fmt: skip
    payment_record_offline(account=account, amount=plan.down_payment, method=Payment.Method.CASH,
                           reference="payment plan down payment")  # fmt: skip


def _plan_json(view) -> dict | None:
    if view is None:
        return None
    money = lambda minor: format_money(minor, view.plan.currency, "en")  # noqa: E731
    nxt = view.next_instalment
    return {
        "status": view.plan.status,
        "total": money(view.plan.total),
        "paid": money(view.paid),
        "remaining": money(view.remaining),
        "pays_by_hand": view.plan.pays_by_hand,
        "next": {"number": nxt.number, "due_date": nxt.due_date.isoformat(), "amount": money(view.next_owed)}
        if nxt else None,
        "instalments": [
            {"number": i.number, "due_date": i.due_date.isoformat(), "amount": money(i.amount), "status": i.status}
            for i in view.instalments
        ],
    }


def demo_staff_totp_secrets() -> dict[str, str]:
    """E-mail → TOTP secret of each demo staff login, for the printed instructions of the local run."""
    users = get_user_model().objects.filter(email__in=DEMO_STAFF_EMAILS).order_by("pk")
    return {user.email: secret for user in users if (secret := staff_totp_secret(user=user))}


def demo_totp_code(*, email: str) -> str:
    """The current code of a demo staff login's authenticator, as an app would show it (local demo only)."""
    if email not in DEMO_STAFF_EMAILS:
        raise ValueError(email)
    secret = demo_staff_totp_secrets()[email]
    return format_hotp_value(hotp_value(secret, int(timezone.now().timestamp()) // 30))


def demo_sepa_biller() -> Biller | None:
    return Biller.objects.filter(slug=DEMO_SEPA_BILLER_SLUG).first()


def _payment_methods(account: CustomerAccount) -> list[dict]:
    """The saved methods under the account's standing mandates (bank accounts), as the JSON lists them."""
    return [
        {
            "type": mandate.scheme, "bank": mandate.bank_name, "last4": mandate.last4,
            "holder_name": mandate.holder_name, "mandate_reference": mandate.display_reference,
            "mandate_status": mandate.status, "login": mandate.user.email if mandate.user_id else None,
        }  # fmt: skip
        for mandate in account.mandates.all()
        if mandate.usage == BankMandate.Usage.MULTI_USE
    ]


def demo_accounts(*, biller: Biller, limit: int | None = None) -> list[dict]:
    """The seeded accounts with what a payer needs to find them, and what they owe. Read by scripts and tests."""
    accounts = (
        CustomerAccount.objects.filter(biller=biller)
        .select_related("biller")
        .order_by("account_number")
        .prefetch_related("bills", "mandates__user")
    )
    accounts = list(accounts[:limit] if limit else accounts)
    plans = plans_by_account(account_ids=[a.pk for a in accounts])
    rows = []
    for account in accounts:
        open_bills = sorted(
            (b for b in account.bills.all() if b.status in Bill.PAYABLE_STATUSES and b.balance_due > 0),
            key=lambda b: (b.due_date, b.pk),
        )
        balance = sum(b.balance_due for b in open_bills)
        rows.append(
            {
                "account_number": account.account_number,
                "holder_name": account.holder_name,
                "lookup_factor": biller.lookup_factor,
                "postal_code": account.postal_code,
                "email": account.email,
                "currency": biller.currency,
                "open_balance_minor": balance,
                "bank_reference": account.bank_reference,
                "credit_minor": account.credit_balance,
                "open_balance": format_money(balance, biller.currency, "en"),
                "payment_methods": _payment_methods(account),
                "open_bills": [
                    {
                        "number": b.number,
                        "due_date": b.due_date.isoformat(),
                        "balance_due_minor": b.balance_due,
                        "pay_link": bill_pay_url(b),
                    }
                    for b in open_bills
                ],
                "payment_plan": _plan_json(plans.get(account.pk)),
            }
        )
    return rows

