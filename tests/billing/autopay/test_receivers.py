"""The seam between payments and autopay: bill_paid is connected, synchronous and inside the payment's transaction.
A bill paid any way (here: offline, at the counter) cancels its waiting autopay charge at once; without the receiver
the charge would still be scheduled, and an error in a receiver rolls the payment back."""

import pytest

from billing.autopay.planning import autopay_plan
from billing.autopay.receivers import autopay_stop_on_bill_paid
from billing.models import AutopayCharge, Bill, Payment
from billing.payments.offline import payment_record_offline
from billing.signals import bill_paid
from tests.billing.autopay_support import enroll, make_user, saved_card
from tests.factories import make_bill

pytestmark = pytest.mark.django_db

UID = "billing.autopay.autopay_stop_on_bill_paid"
S = AutopayCharge.Status


@pytest.fixture
def scheduled(account, django_user_model, django_capture_on_commit_callbacks):
    user = make_user(django_user_model)
    enroll(account, user, saved_card(user, "pm_default", default=True))
    bill = make_bill(account, amounts=(4000,), due_in_days=5)
    with django_capture_on_commit_callbacks(execute=True):
        autopay_plan()
    charge = AutopayCharge.objects.get(bill=bill)
    assert charge.status == S.SCHEDULED
    return bill, charge


def test_the_autopay_receiver_is_connected_to_bill_paid():
    assert any(key[0] == UID for key, *_ in bill_paid.receivers)


def test_paying_a_bill_offline_cancels_its_scheduled_autopay_charge(account, scheduled):
    bill, charge = scheduled
    payment_record_offline(account=account, amount=4000, method="cash")
    charge.refresh_from_db()
    assert (charge.status, charge.reason) == (S.CANCELLED, "paid_elsewhere")


def test_without_the_receiver_the_charge_would_still_wait(account, scheduled):
    bill, charge = scheduled
    assert bill_paid.disconnect(dispatch_uid=UID)
    try:
        payment_record_offline(account=account, amount=4000, method="cash")
    finally:
        bill_paid.connect(autopay_stop_on_bill_paid, dispatch_uid=UID)
    charge.refresh_from_db()
    assert charge.status == S.SCHEDULED  # what the connected receiver prevents


def test_an_error_in_a_bill_paid_receiver_rolls_the_payment_back(account, scheduled):
    bill, charge = scheduled

    def broken(sender, **kwargs):
        raise RuntimeError("receiver failed")

    bill_paid.connect(broken, dispatch_uid="tests.broken")
    try:
        with pytest.raises(RuntimeError):
            payment_record_offline(account=account, amount=4000, method="cash")
    finally:
        bill_paid.disconnect(dispatch_uid="tests.broken")
    bill.refresh_from_db()
    charge.refresh_from_db()
    assert not Payment.objects.exists() and bill.status == Bill.Status.OPEN and bill.amount_paid == 0
    assert charge.status == S.SCHEDULED
