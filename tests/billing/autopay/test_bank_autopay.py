"""Autopay from a bank account under a standing SEPA mandate, against a real localstripe: the pre-notification goes
out once and before the debit, the planner and sweeper debit it with the same exactly-once rules as a card, revoking
the mandate stops the next debit, and a debit the bank returns reopens the charge by its decline class."""

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import AccountLink
from accounts.services import account_link_grant
from billing.autopay.enrolment import autopay_enroll
from billing.errors import ApplicationError
from billing.methods.bank import bank_account_save, bank_mandate_revoke
from billing.models import AutopayCharge, BankMandate, Bill, Payment
from billing.payments.bank_debits import mandate_text_digest
from billing.payments.core import payment_record_result
from billing.payments.mandates import mandate_text
from notifications.models import Notification
from notifications.services import notifications_sweep
from tests import stripe_support
from tests.billing.autopay_support import Driver, make_user
from tests.billing.bank_support import GOOD_IBAN, RETURNED_IBAN, acceptance, sepa_biller, wait_for_intent
from tests.factories import make_bill
from tests.notice_sending import celery_eager  # noqa: F401

S = AutopayCharge.Status


@pytest.fixture
def driver(django_capture_on_commit_callbacks):
    return Driver(django_capture_on_commit_callbacks)


def save_bank_account(user, account, iban=GOOD_IBAN):
    text = mandate_text(biller=account.biller, usage=BankMandate.Usage.MULTI_USE)
    return bank_account_save(
        user=user, account=account, kind="sepa_debit", account_number=iban, holder_name="Jana Novak",
        holder_email=user.email, shown_text_digest=mandate_text_digest(text), acceptance=acceptance(),
    )  # fmt: skip


def bank_autopay_payer(account, django_user_model, iban=GOOD_IBAN):
    sepa_biller(account.biller)
    user = make_user(django_user_model)
    account_link_grant(user=user, account=account, via=AccountLink.Via.LOOKUP)
    method = save_bank_account(user, account, iban)
    autopay_enroll(account=account, user=user, payment_method=method, charge_rule="on_due_date", consent_text="I agree.")
    return user, method


@pytest.mark.django_db
@pytest.mark.usefixtures("celery_eager")
def test_the_pre_notification_goes_out_once_before_the_debit(
    stripe_settings, localstripe, account, django_user_model, driver, mailoutbox
):
    _user, method = bank_autopay_payer(account, django_user_model)
    assert (method.kind, method.last4, method.bank_name, method.is_default) == ("sepa_debit", "3000", "Commerzbank",
                                                                                 True)  # fmt: skip
    mandate = method.mandate
    assert (mandate.usage, mandate.status, mandate.account_id) == ("multi_use", "pending", account.pk)
    bill = make_bill(account, amounts=(4200,), due_in_days=1)

    assert driver.plan().created == 1
    charge = AutopayCharge.objects.get(bill=bill)
    assert charge.debit_notice_at is not None
    assert charge.next_attempt_at >= charge.debit_notice_at + dt.timedelta(days=account.biller.debit_notice_days)
    with driver.capture(execute=True):
        notifications_sweep()  # the minute sweeper sends what is due
    notice = Notification.objects.get(bill=bill, kind="debit_notice", channel="email")
    assert notice.status == "sent"
    (mail,) = [m for m in mailoutbox if m.subject.startswith("Direct debit of")]
    assert "€42.00" in mail.subject and mandate.reference in mail.body and mandate.creditor_identifier in mail.body

    # Due tomorrow, but the pre-notification period is three days: nothing is debited before it has passed.
    assert driver.run(days=1.5) == []
    assert stripe_support.payment_intents(localstripe) == []
    assert driver.plan().created == 0

    assert driver.run(days=4) == [S.SUCCEEDED]
    paid = Payment.objects.get()
    assert (paid.channel, paid.method, paid.status, paid.mandate_id) == ("autopay", "sepa_debit", "succeeded",
                                                                         mandate.pk)  # fmt: skip
    assert paid.payment_method_summary == "Commerzbank •••• 3000"
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID
    notice.refresh_from_db()
    assert notice.sent_at < paid.created_at  # told before the debit
    assert Notification.objects.filter(kind="debit_notice").count() == 1
    assert Notification.objects.filter(kind="autopay_upcoming").count() == 0  # the debit notice replaces it
    (intent,) = stripe_support.payment_intents(localstripe)
    assert intent["amount"] == 4200 and intent["status"] == "succeeded"
    # Every sweeper again: nothing debited twice.
    assert driver.plan().created == 0 and driver.run(days=30) == []
    assert len(stripe_support.payment_intents(localstripe)) == 1


@pytest.mark.django_db
def test_revoking_the_mandate_stops_the_next_debit(stripe_settings, localstripe, account, django_user_model, driver):
    user, method = bank_autopay_payer(account, django_user_model)
    bill = make_bill(account, amounts=(4200,), due_in_days=1)
    driver.plan()
    bank_mandate_revoke(user=user, payment_method=method)

    assert driver.run(days=4) == [S.FAILED_FINAL]
    assert stripe_support.payment_intents(localstripe) == []
    assert not Payment.objects.exists()
    charge = AutopayCharge.objects.get(bill=bill)
    assert charge.reason == AutopayCharge.Reason.NO_CARD
    bill.refresh_from_db()
    assert bill.status == Bill.Status.OPEN
    with pytest.raises(ApplicationError, match="revoked"):
        autopay_enroll(account=account, user=user, payment_method=method, charge_rule="on_due_date",
                       consent_text="I agree.", replace=True)  # fmt: skip


@pytest.mark.django_db
@pytest.mark.usefixtures("celery_eager")
def test_a_returned_autopay_debit_reopens_the_bill_and_its_charge_once(
    stripe_settings, localstripe, account, django_user_model, driver, mailoutbox
):
    """localstripe's failing IBAN: the debit is `processing` (counted as paid), then fails about 0.5 s later, like a
    bank return days later. The result is recorded the way the webhook records it, twice."""
    bank_autopay_payer(account, django_user_model, iban=RETURNED_IBAN)
    bill = make_bill(account, amounts=(4200,), due_in_days=1)
    driver.plan()
    assert driver.run(days=4) == [S.SUCCEEDED]
    payment = Payment.objects.get()
    bill.refresh_from_db()
    assert (payment.status, bill.status) == ("processing", "paid")

    wait_for_intent(localstripe, payment.gateway_payment_id, "requires_payment_method")
    for _ in range(2):
        with driver.capture(execute=True):
            payment_record_result(payment_intent_id=payment.gateway_payment_id, source="webhook")
    payment.refresh_from_db()
    bill.refresh_from_db()
    charge = AutopayCharge.objects.get(bill=bill)
    assert payment.status == "failed" and (bill.status, bill.balance_due) == ("open", 4200)
    # localstripe reports every failure as card_declined: a soft decline, so autopay retries on the schedule.
    assert charge.status == S.RETRY_SCHEDULED and charge.last_decline_class == "soft"
    assert charge.next_attempt_at > timezone.now()
    assert [t.outcome for t in charge.tries.all()] == ["declined"]
    assert Notification.objects.filter(payment=payment, kind="payment_failed", channel="email").count() == 1
    (mail,) = [m for m in mailoutbox if m.subject.startswith("Your payment of")]
    assert "returned the direct debit" in mail.body and "try again" in mail.body


class FakeBankReturnGateway:
    """The real (localstripe) gateway, except that a failed intent reads back with the bank failure code given:
    localstripe reports every failure as card_declined, and a closed account is what this test needs."""

    def __init__(self, real, code: str):
        self.real, self.code = real, code

    def __getattr__(self, name):
        return getattr(self.real, name)

    def retrieve_payment_intent(self, intent_id):
        import dataclasses

        intent = self.real.retrieve_payment_intent(intent_id)
        if intent.status == "requires_payment_method" and intent.error_code:
            return dataclasses.replace(intent, error_code=self.code)
        return intent


@pytest.mark.django_db
def test_an_account_closed_return_is_hard_and_autopay_falls_back_to_the_backup_card(
    stripe_settings, localstripe, account, django_user_model, driver, monkeypatch
):
    """A returned debit with `account_closed` (delivered through FakeBankReturnGateway, see its docstring): the bank
    account is out for this bill and the retry charges the payer's backup card, once."""
    from billing.methods.services import payment_method_make_backup
    from billing.payments import gateway
    from tests.billing.autopay.test_autopay_runs import VISA, save_card

    user, _method = bank_autopay_payer(account, django_user_model, iban=RETURNED_IBAN)
    payment_method_make_backup(user=user, payment_method=save_card(user, VISA))
    bill = make_bill(account, amounts=(4200,), due_in_days=1)
    driver.plan()
    assert driver.run(days=4) == [S.SUCCEEDED]
    debit = Payment.objects.get()
    wait_for_intent(localstripe, debit.gateway_payment_id, "requires_payment_method")

    real = gateway.get_gateway
    monkeypatch.setattr(gateway, "get_gateway", lambda: FakeBankReturnGateway(real(), "account_closed"))
    with driver.capture(execute=True):
        payment_record_result(payment_intent_id=debit.gateway_payment_id, source="webhook")
    monkeypatch.setattr(gateway, "get_gateway", real)
    charge = AutopayCharge.objects.get(bill=bill)
    assert (charge.status, charge.last_decline_class, charge.default_out) == (S.RETRY_SCHEDULED, "hard", True)

    assert driver.run(days=30) == [S.SUCCEEDED]
    charge.refresh_from_db()
    paid = charge.payment
    assert (paid.method, paid.status, paid.payment_method_summary) == ("card", "succeeded", "Visa •••• 4242")
    assert [(t.method_role, t.outcome) for t in charge.tries.order_by("pk")] == [
        ("default", "declined"), ("backup", "succeeded"),
    ]  # fmt: skip
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID and bill.amount_paid == 4200
