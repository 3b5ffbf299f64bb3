"""Twelve months of demo history, so the staff insight page's charts show something real: paid bills with payments on
every channel (guest share falling, autopay rising), paperless and autopay enrolments that grow over the year,
reminders (with some payers opted out, so reminder yield has a comparison), autopay retries and backup-card
recoveries, a few refunds, payer sign-ins and an invitation batch.

Rows are bulk-written, not run through the services: this is history, already settled, and the seed must stay fast
(the run command re-runs it on every start). It is written once per biller, all or nothing; a later run finds the
first history bill and adds nothing. Demo autopay enrolments are left paused, so nothing ever charges their card.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from billing.clock import biller_zone
from billing.models import (
    AutopayCharge,
    AutopayChargeTry,
    AutopayEnrollment,
    Bill,
    Biller,
    CustomerAccount,
    PaperlessEnrollment,
    Payment,
    PaymentAllocation,
    PaymentMethod,
    Refund,
)
from notifications.models import Notification

from .models import AccountLink, Invitation, InvitationBatch, PortalSignIn

PREFIX = "RH-"
MONTHS = 12
AUTOPAY_USER_EMAIL = "autopay-history@example.com"


def _month_first(today: dt.date, back: int) -> dt.date:
    index = today.year * 12 + today.month - 1 - back
    return dt.date(index // 12, index % 12 + 1, 1)


def _at(zone, day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=zone)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@transaction.atomic
def demo_history_seed(*, biller: Biller, today: dt.date | None = None) -> int:
    """Write the history once; return how many bills it added (0 when it was already there)."""
    if Bill.objects.filter(biller=biller, number__startswith=PREFIX).exists():
        return 0
    today = today or timezone.localdate()
    zone = biller_zone(biller)
    now = timezone.now()
    rng = random.Random(15_2026)
    accounts = list(CustomerAccount.objects.filter(biller=biller).order_by("account_number"))
    if not accounts:
        return 0
    User = get_user_model()
    payer, _ = User.objects.get_or_create(email=AUTOPAY_USER_EMAIL, defaults={"name": "Demo autopay payer"})
    card, _ = PaymentMethod.objects.get_or_create(
        gateway_payment_method_id="pm_demo_history",
        defaults={"user": payer, "gateway_customer_id": "cus_demo_history", "brand": "visa", "last4": "4242",
                  "exp_month": 12, "exp_year": today.year + 3},
    )  # fmt: skip

    # Enrolments that grow over the year: two in three accounts go paperless, one in four turns autopay on.
    already_paperless = set(PaperlessEnrollment.objects.filter(account__in=accounts).values_list("account_id", flat=True))
    already_autopay = set(AutopayEnrollment.objects.filter(account__in=accounts).values_list("account_id", flat=True))
    paperless_since, autopay = {}, {}
    for i, account in enumerate(accounts):
        if i % 3 and account.pk not in already_paperless:
            paperless_since[account.pk] = now - dt.timedelta(days=20 + (i * 37) % 340)
        if i % 4 == 1 and account.pk not in already_autopay:
            autopay[account.pk] = AutopayEnrollment(
                account=account, user=payer, payment_method=card, charge_rule="on_due_date", currency=biller.currency,
                status=AutopayEnrollment.Status.PAUSED, consent_text="Demo history", payment_method_summary="Visa 4242",
                consented_at=now - dt.timedelta(days=30 + (i * 53) % 300), status_changed_at=now,
            )  # fmt: skip
    PaperlessEnrollment.objects.bulk_create(
        PaperlessEnrollment(account_id=pk, email=f"history{pk}@example.com", consent_text="Demo history",
                            consented_at=when, via=PaperlessEnrollment.Via.PORTAL)  # fmt: skip
        for pk, when in paperless_since.items()
    )
    AutopayEnrollment.objects.bulk_create(autopay.values())

    bills, payments, allocations, notices, charges = [], [], [], [], []
    steps = sorted(s for s in (biller.reminder_schedule or []) if isinstance(s, int))
    for back in range(MONTHS, 0, -1):
        first = _month_first(today, back)
        for i, account in enumerate(accounts):
            issued = first + dt.timedelta(days=2 + i % 5)
            due = issued + dt.timedelta(days=21)
            total = rng.randint(40, 160) * 100
            bill = Bill(
                biller=biller, account=account, number=f"{PREFIX}{account.account_number}-{first:%Y%m}",
                status=Bill.Status.PAID, period_start=first - dt.timedelta(days=30), period_end=first,
                issue_date=issued, due_date=due, currency=biller.currency, subtotal=total, total=total,
                amount_paid=total,
            )  # fmt: skip
            on_autopay = account.pk in autopay and _at(zone, issued, 0) > autopay[account.pk].consented_at
            # Most bills are paid (autopay ones on the due date); a few old ones are not, a couple were written off.
            roll = rng.random()
            paid_on = due if on_autopay else issued + dt.timedelta(days=rng.randint(1, 34))
            if roll < 0.04 or paid_on > today:
                bill.status, bill.amount_paid = Bill.Status.OPEN, 0
            elif roll < 0.05:
                bill.status, bill.amount_paid = Bill.Status.UNCOLLECTIBLE, 0
            bills.append(bill)
            if bill.amount_paid:
                # Guest payments give way to the portal and autopay over the year.
                guest_share = 0.55 - 0.03 * (MONTHS - back)
                channel = (
                    Payment.Channel.AUTOPAY if on_autopay
                    else Payment.Channel.GUEST_WEB if rng.random() < guest_share
                    else Payment.Channel.PORTAL if rng.random() < 0.8
                    else Payment.Channel.STAFF_OFFLINE
                )  # fmt: skip
                method = Payment.Method.CASH if channel == Payment.Channel.STAFF_OFFLINE else Payment.Method.CARD
                received = _at(zone, paid_on, 10 + i % 8)
                payment = Payment(
                    biller=biller, account=account, confirmation_number=f"H{first:%y%m}{i:03d}{account.pk:06d}"[:20],
                    channel=channel, method=method, status=Payment.Status.SUCCEEDED, currency=biller.currency,
                    amount=total, received_at=received, payment_method_summary="Visa 4242" if method == "card" else "",
                )  # fmt: skip
                payments.append(payment)
                allocations.append((payment, bill))
                if on_autopay:
                    charges.append((bill, account, payment, (i + back) % 6))
            paid_at = _at(zone, paid_on, 10 + i % 8) if bill.amount_paid else None
            # Reminders: the new-bill e-mail, then each schedule step the bill was still unpaid for. One account in
            # five opted out of reminders, so paid-within-72-hours has bills to compare with.
            notices.append((bill, "bill_issued", "email", None, _at(zone, issued, 9)))
            if i % 5:
                for step in steps:
                    moment = _at(zone, due + dt.timedelta(days=step), 9)
                    if moment.date() <= today and (paid_at is None or paid_at > moment):
                        kind = "due_upcoming" if step < 0 else "due_today" if step == 0 else "past_due"
                        for channel in ("email", "sms") if step > 0 and i % 2 else ("email",):
                            notices.append((bill, kind, channel, step, moment))
    Bill.objects.bulk_create(bills)
    Payment.objects.bulk_create(payments)
    PaymentAllocation.objects.bulk_create(PaymentAllocation(payment=p, bill=b, amount=b.total) for p, b in allocations)
    Notification.objects.bulk_create(
        Notification(
            dedupe_key=f"demo-history:{b.number}:{kind}:{channel}:{step}", biller=biller, account=b.account, bill=b,
            kind=kind, channel=channel, step=step, status=Notification.Status.SENT, send_at=moment, sent_at=moment,
            recipient=b.account.email, language=b.account.language,
        )  # fmt: skip
        for b, kind, channel, step, moment in notices
    )
    _autopay_history(biller=biller, autopay=autopay, charges=charges, card=card)
    _refunds(payments=payments, rng=rng)
    _portal_history(biller=biller, accounts=accounts, today=today, zone=zone, rng=rng)
    return len(bills)


def _autopay_history(*, biller, autopay, charges, card) -> None:
    """One charge per autopay-paid bill: most succeed first time; some are retried after a soft decline, some are
    saved by the backup card after a hard decline (the backup card is the same demo card: only the row says so)."""
    rows, tries, failed = [], [], []
    for bill, account, payment, pattern in charges:
        when = payment.received_at
        charge = AutopayCharge(
            bill=bill, enrollment=autopay[account.pk], account=account, status=AutopayCharge.Status.SUCCEEDED,
            charge_on=bill.due_date, attempt_number=1, currency=biller.currency, amount=payment.amount,
            payment=payment,
        )  # fmt: skip
        plan = [(1, "default", "succeeded", "", when)]
        if pattern == 0:
            charge.attempt_number, charge.first_failed_at = 2, when - dt.timedelta(days=1)
            charge.last_decline_code, charge.last_decline_class = "insufficient_funds", "soft"
            plan = [(1, "default", "declined", "soft", when - dt.timedelta(days=1)), (2, "default", "succeeded", "", when)]
        elif pattern == 1:
            charge.first_failed_at = when - dt.timedelta(minutes=5)
            charge.last_decline_code, charge.last_decline_class = "expired_card", "hard"
            charge.default_out, charge.backup_tried = True, True
            plan = [(1, "default", "declined", "hard", when - dt.timedelta(minutes=5)), (1, "backup", "succeeded", "", when)]
        rows.append(charge)
        for number, role, outcome, decline_class, moment in plan:
            pay = payment
            if outcome != "succeeded":
                pay = Payment(
                    biller=biller, account=account, confirmation_number=f"HF{payment.confirmation_number[1:]}"[:20],
                    channel=Payment.Channel.AUTOPAY, method=Payment.Method.CARD, status=Payment.Status.FAILED,
                    currency=biller.currency, amount=payment.amount,
                )  # fmt: skip
                failed.append(pay)
            tries.append((charge, number, role, outcome, decline_class, moment, pay))
    Payment.objects.bulk_create(failed)
    AutopayCharge.objects.bulk_create(rows)
    made = AutopayChargeTry.objects.bulk_create(
        AutopayChargeTry(charge=c, attempt_number=n, method_role=role, payment_method=card, payment=p, outcome=o,
                         decline_class=dc, decline_code={"soft": "insufficient_funds", "hard": "expired_card"}.get(dc, ""))
        for c, n, role, o, dc, _moment, p in tries
    )  # fmt: skip
    for row, (*_rest, moment, _pay) in zip(made, tries):
        row.created_at = moment
    AutopayChargeTry.objects.bulk_update(made, ["created_at"])


def _refunds(*, payments, rng) -> None:
    chosen = [p for p in payments if p.channel in (Payment.Channel.GUEST_WEB, Payment.Channel.PORTAL)][::97][:4]
    refunds = []
    for p in chosen:
        amount = min(p.amount, rng.randint(5, 20) * 100)
        Payment.objects.filter(pk=p.pk).update(amount_refunded=amount)
        refunds.append(Refund(payment=p, amount=amount, currency=p.currency, reason="Demo: billing correction",
                              status=Refund.Status.SUCCEEDED, idempotency_key=f"demo-history-refund-{p.pk}"))  # fmt: skip
    made = Refund.objects.bulk_create(refunds)
    for refund, p in zip(made, chosen):
        refund.created_at = p.received_at + dt.timedelta(days=2)
    Refund.objects.bulk_update(made, ["created_at"])


def _portal_history(*, biller, accounts, today, zone, rng) -> None:
    """Twelve payers with portal logins who sign in more as the year goes on, and one paperless invitation batch."""
    User = get_user_model()
    users = []
    for i, account in enumerate(accounts[:12]):
        user, _ = User.objects.get_or_create(email=f"history-payer{i + 1}@example.com", defaults={"name": account.holder_name})
        AccountLink.objects.get_or_create(user=user, customer_account=account, defaults={"created_via": "lookup"})
        users.append(user)
    sign_ins, moments = [], []
    for back in range(MONTHS, -1, -1):
        first = _month_first(today, back)
        for user in users:
            for _ in range(rng.randint(0, 1 + (MONTHS - back) // 4)):
                moment = _at(zone, first + dt.timedelta(days=rng.randint(0, 27)), rng.randint(7, 22))
                if moment.date() <= today:
                    sign_ins.append(PortalSignIn(user=user))
                    moments.append(moment)
    made = PortalSignIn.objects.bulk_create(sign_ins)
    for row, moment in zip(made, moments):
        row.created_at = moment
    PortalSignIn.objects.bulk_update(made, ["created_at"])

    batch = InvitationBatch.objects.create(kind="paperless", status=InvitationBatch.Status.DONE, total=12, processed=12)
    sent_on = _at(zone, _month_first(today, 2) + dt.timedelta(days=4), 10)
    invitations = []
    for i, account in enumerate(accounts[12:24]):
        used = sent_on + dt.timedelta(days=1 + i) if i % 3 == 0 else None
        invitations.append(Invitation(
            customer_account=account, kind="paperless", email=account.email, batch=batch,
            token_hash=_hash(f"demo-history-invitation-{biller.pk}-{account.pk}"),
            status=Invitation.Status.USED if used else Invitation.Status.EXPIRED, sent_at=sent_on, used_at=used,
            expires_at=sent_on + dt.timedelta(days=30),
        ))  # fmt: skip
    made = Invitation.objects.bulk_create(invitations)
    for row in made:
        row.created_at = sent_on
    Invitation.objects.bulk_update(made, ["created_at"])
    paperless = set(PaperlessEnrollment.objects.filter(account__in=accounts, cancelled_at__isnull=True)
                    .values_list("account_id", flat=True))  # fmt: skip
    PaperlessEnrollment.objects.bulk_create(
        PaperlessEnrollment(account_id=row.customer_account_id, email=row.email, consent_text="Demo history",
                            consented_at=row.used_at, via=PaperlessEnrollment.Via.INVITATION)  # fmt: skip
        for row in made
        if row.used_at and row.customer_account_id not in paperless
    )
    batch.sent = len(made)
    batch.finished_at = sent_on
    batch.save(update_fields=["sent", "finished_at"])
