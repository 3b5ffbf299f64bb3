"""A small, hand-checkable biller for the insight tests: five accounts, nine bills, a handful of payments, one refund,
two autopay charges. Rows are written directly (the figures only read them), with dates fixed around October 2026.

The expected figures are worked out by hand in the tests' comments from the table below, never from the code.

    account  bill  issued      due         total   paid    status         note
    A1       B1    2026-10-05  2026-10-25  10000   10000   paid           P1 guest card, Oct 10 (R1 refund 1000, Oct 15)
    A1       B7    2026-09-05  2026-09-25   8000    8000   paid           P3 staff cash, Sep 20
    A2       B2    2026-10-05  2026-10-25  20000    5000   open           P2 portal card, Oct 12
    A3       B3    2026-10-20  2026-11-15  30000    3000   open           P5 autopay backup card, Oct 25
    A4       B4    2026-09-05  2026-09-25  40000       0   open
    A4       B5    2026-10-06  2026-10-26   5000       0   void
    A5       B6    (draft)     2026-11-20   7000       0   draft
    A5       B8    2026-06-01  2026-06-20   6000       0   uncollectible
    A5       B9    2026-08-01  2026-08-20   1000       0   open

    paperless: A1 since Sep 1; A2 since Oct 10; A3 Aug 1 → cancelled Oct 1; A4 Sep 1 → cancelled Oct 1
    autopay:   A2 active since Oct 1; A3 since Sep 1, suspended Oct 25; A1 active since Oct 6
    autopay charges: C1 (B3): try 1 autopay card declined soft Oct 24, try 2 backup card succeeded Oct 25 (P5)
                     C2 (B2): try 1 autopay card declined hard Oct 26, failed for good
"""

import datetime as dt
from types import SimpleNamespace

from billing.models import (
    AutopayCharge,
    AutopayChargeTry,
    AutopayEnrollment,
    Bill,
    PaperlessEnrollment,
    Payment,
    PaymentAllocation,
    PaymentMethod,
    Refund,
)
from tests.factories import BillerFactory, CustomerAccountFactory

UTC = dt.timezone.utc
TODAY = dt.date(2026, 11, 10)


def at(day: str, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), tzinfo=UTC)


def bill(account, number, issued, due, total, paid, status):
    return Bill.objects.create(
        biller=account.biller, account=account, number=number, status=status,
        period_start=dt.date(2026, 1, 1), period_end=dt.date(2026, 1, 31),
        issue_date=dt.date.fromisoformat(issued) if issued else None, due_date=dt.date.fromisoformat(due),
        currency="USD", subtotal=total, total=total, amount_paid=paid,
    )  # fmt: skip


_numbers = iter(range(1, 10**6))


def payment(account, *, amount, channel, method="card", status="succeeded", received=None, bills=()):
    p = Payment.objects.create(
        biller=account.biller, account=account, confirmation_number=f"BP-T{next(_numbers):06d}", channel=channel,
        method=method, status=status, currency="USD", amount=amount, received_at=received,
    )  # fmt: skip
    for target, part in bills:
        PaymentAllocation.objects.create(payment=p, bill=target, amount=part)
    return p


def stamp(model, pk, **moments):
    """auto_now_add fields can only be set after the row exists."""
    model.objects.filter(pk=pk).update(**moments)


def build(django_user_model, *, biller=None) -> SimpleNamespace:
    biller = biller or BillerFactory(slug="insight-river", name="Insight River", currency="USD", time_zone="UTC")
    a1, a2, a3, a4, a5 = (
        CustomerAccountFactory(biller=biller, account_number=f"A{i}", holder_name=f"Holder {i}") for i in range(1, 6)
    )
    b1 = bill(a1, "B1", "2026-10-05", "2026-10-25", 10000, 10000, "paid")
    b7 = bill(a1, "B7", "2026-09-05", "2026-09-25", 8000, 8000, "paid")
    b2 = bill(a2, "B2", "2026-10-05", "2026-10-25", 20000, 5000, "open")
    b3 = bill(a3, "B3", "2026-10-20", "2026-11-15", 30000, 3000, "open")
    bill(a4, "B4", "2026-09-05", "2026-09-25", 40000, 0, "open")
    bill(a4, "B5", "2026-10-06", "2026-10-26", 5000, 0, "void")
    bill(a5, "B6", None, "2026-11-20", 7000, 0, "draft")
    bill(a5, "B8", "2026-06-01", "2026-06-20", 6000, 0, "uncollectible")
    bill(a5, "B9", "2026-08-01", "2026-08-20", 1000, 0, "open")

    p1 = payment(a1, amount=10000, channel="guest_web", received=at("2026-10-10"), bills=[(b1, 10000)])
    p2 = payment(a2, amount=5000, channel="portal", received=at("2026-10-12"), bills=[(b2, 5000)])
    p3 = payment(a1, amount=8000, channel="staff_offline", method="cash", received=at("2026-09-20"), bills=[(b7, 8000)])
    payment(a3, amount=9999, channel="guest_web", status="failed")
    p5 = payment(a3, amount=3000, channel="autopay", received=at("2026-10-25"), bills=[(b3, 3000)])
    p6 = payment(a3, amount=3000, channel="autopay", status="failed")
    p7 = payment(a2, amount=15000, channel="autopay", status="failed")
    Payment.objects.filter(pk=p1.pk).update(amount_refunded=1000)
    r1 = Refund.objects.create(payment=p1, amount=1000, currency="USD", reason="goodwill", status="succeeded",
                               idempotency_key="refund-t-1")  # fmt: skip
    stamp(Refund, r1.pk, created_at=at("2026-10-15"))
    r2 = Refund.objects.create(payment=p2, amount=500, currency="USD", reason="x", status="failed",
                               idempotency_key="refund-t-2")  # fmt: skip
    stamp(Refund, r2.pk, created_at=at("2026-10-16"))

    def paperless(account, consented, cancelled=None):
        PaperlessEnrollment.objects.create(
            account=account, email="p@example.com", consent_text="yes", consented_at=at(consented),
            cancelled_at=at(cancelled) if cancelled else None, via="portal",
        )  # fmt: skip

    paperless(a1, "2026-09-01")
    paperless(a2, "2026-10-10")
    paperless(a3, "2026-08-01", "2026-10-01")
    paperless(a4, "2026-09-01", "2026-10-01")

    payer = django_user_model.objects.create_user(email="insight-payer@example.com", password="pw-Payer-123")
    default = PaymentMethod.objects.create(user=payer, gateway_customer_id="cus_t", gateway_payment_method_id="pm_t1",
                                           brand="visa", last4="4242", is_default=True)  # fmt: skip
    backup = PaymentMethod.objects.create(user=payer, gateway_customer_id="cus_t", gateway_payment_method_id="pm_t2",
                                          brand="visa", last4="1111", is_backup=True)  # fmt: skip

    def autopay(account, consented, status="active", changed=None):
        return AutopayEnrollment.objects.create(
            account=account, user=payer, payment_method=default, charge_rule="on_due_date", currency="USD",
            status=status, consent_text="yes", consented_at=at(consented), payment_method_summary="Visa 4242",
            status_changed_at=at(changed or consented),
        )  # fmt: skip

    e2 = autopay(a2, "2026-10-01")
    e3 = autopay(a3, "2026-09-01", status="suspended", changed="2026-10-25")
    autopay(a1, "2026-10-06")

    c1 = AutopayCharge.objects.create(
        bill=b3, enrollment=e3, account=a3, status="succeeded", charge_on=dt.date(2026, 10, 24), attempt_number=2,
        first_failed_at=at("2026-10-24"), last_decline_code="insufficient_funds", last_decline_class="soft",
        currency="USD", amount=3000, payment=p5,
    )  # fmt: skip
    c2 = AutopayCharge.objects.create(
        bill=b2, enrollment=e2, account=a2, status="failed_final", charge_on=dt.date(2026, 10, 26), attempt_number=1,
        first_failed_at=at("2026-10-26"), last_decline_code="stolen_card", last_decline_class="hard", currency="USD",
    )  # fmt: skip
    for charge, number, role, method, pay, outcome, decline_class, when in (
        (c1, 1, "default", default, p6, "declined", "soft", "2026-10-24"),
        (c1, 2, "backup", backup, p5, "succeeded", "", "2026-10-25"),
        (c2, 1, "default", default, p7, "declined", "hard", "2026-10-26"),
    ):
        t = AutopayChargeTry.objects.create(charge=charge, attempt_number=number, method_role=role,
                                            payment_method=method, payment=pay, outcome=outcome,
                                            decline_class=decline_class)  # fmt: skip
        stamp(AutopayChargeTry, t.pk, created_at=at(when))
    return SimpleNamespace(biller=biller, accounts=(a1, a2, a3, a4, a5), payments=(p1, p2, p3, p5), refund=r1)
