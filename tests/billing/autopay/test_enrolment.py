"""Autopay enrolment (billing/autopay/enrolment.py): the mandate, transitions, rules and the upcoming charge; against
localstripe."""

import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from billing.autopay.enrolment import autopay_cancel, autopay_pause, autopay_resume, autopay_transition
from billing.autopay.selectors import autopay_upcoming
from billing.errors import ApplicationError
from billing.models import AutopayEnrollment, EnrollmentEvent
from tests.factories import make_bill
from tests.billing.cards_support import CONSENT, enrol, linked, make_user, save_card

pytestmark = pytest.mark.django_db


def test_autopay_keeps_the_mandate(stripe_settings, account, user):
    linked(user, account)
    method = save_card(user)
    enrollment = enrol(account, user, method, charge_rule="days_before", days_before=3, max_amount=10000)
    assert enrollment.status == AutopayEnrollment.Status.ACTIVE
    assert (enrollment.consent_text, enrollment.ip) == (CONSENT, "192.0.2.1")
    assert enrollment.payment_method_summary == "Visa ending 4242, expires 12/2034"
    assert (enrollment.days_before, enrollment.max_amount, enrollment.currency) == (3, 10000, "USD")


def test_autopay_transitions_and_illegal_ones(stripe_settings, account, user):
    linked(user, account)
    enrollment = enrol(account, user, save_card(user))
    enrollment = autopay_pause(enrollment=enrollment, user=user)
    assert enrollment.status == "paused"
    with pytest.raises(ApplicationError):
        autopay_pause(enrollment=enrollment, user=user)  # paused → paused
    with pytest.raises(ApplicationError):
        autopay_transition(enrollment=enrollment, to_status="suspended")  # only an active one suspends
    enrollment = autopay_resume(enrollment=enrollment, user=user)
    enrollment = autopay_transition(enrollment=enrollment, to_status="suspended")
    enrollment = autopay_cancel(enrollment=enrollment, user=user)
    for status in ("active", "paused", "suspended"):
        with pytest.raises(ApplicationError):
            autopay_transition(enrollment=enrollment, to_status=status)
    enrollment.refresh_from_db()
    assert enrollment.status == "cancelled"
    moves = list(
        EnrollmentEvent.objects.filter(autopay=enrollment, kind=EnrollmentEvent.Kind.AUTOPAY_STATUS)
        .order_by("pk")
        .values_list("from_status", "to_status")
    )
    assert moves == [("active", "paused"), ("paused", "active"), ("active", "suspended"), ("suspended", "cancelled")]


def test_one_current_autopay_per_account(stripe_settings, account, user, django_user_model):
    partner = make_user(django_user_model, "partner@example.com")
    linked(user, account)
    linked(partner, account)
    first = enrol(account, user, save_card(user))
    autopay_pause(enrollment=first)
    with pytest.raises(ApplicationError):
        enrol(account, partner, save_card(partner))  # a paused enrolment still holds the account
    second = enrol(account, partner, partner.payment_methods.get(), replace=True)
    first.refresh_from_db()
    assert first.status == "cancelled" and second.status == "active"
    with pytest.raises(IntegrityError), transaction.atomic():
        AutopayEnrollment.objects.filter(pk=first.pk).update(status="paused")


def test_autopay_rules_are_checked(stripe_settings, account, user, django_user_model):
    method = save_card(user)
    with pytest.raises(ApplicationError, match="not linked"):
        enrol(account, user, method)
    linked(user, account)
    with pytest.raises(ApplicationError):
        enrol(account, user, method, charge_rule="days_before", days_before=None)
    with pytest.raises(ApplicationError):
        enrol(account, user, method, charge_rule="days_before", days_before=21)
    with pytest.raises(ApplicationError):
        enrol(account, user, method, max_amount=0)
    other = make_user(django_user_model, "other@example.com")
    with pytest.raises(ApplicationError):
        enrol(account, user, save_card(other))  # not their card
    assert not AutopayEnrollment.objects.exists()


def test_upcoming_charge_under_the_rule_and_the_maximum(stripe_settings, account, user):
    linked(user, account)
    today = dt.date.today()
    make_bill(account, amounts=(9000,), due_in_days=-3)  # overdue: the payer's to pay by hand
    bill = make_bill(account, amounts=(12000,), due_in_days=10)
    make_bill(account, amounts=(3000,), due_in_days=40)
    enrollment = enrol(account, user, save_card(user), charge_rule="days_before", days_before=4, max_amount=15000)

    upcoming = autopay_upcoming(account=account, today=today)
    assert (upcoming.bill, upcoming.charge_on, upcoming.amount) == (bill, today + dt.timedelta(days=6), 12000)
    assert not upcoming.above_max and upcoming.amount_display == "$120.00"

    enrollment = enrol(account, user, enrollment.payment_method, max_amount=10000, replace=True)
    upcoming = autopay_upcoming(account=account, today=today)
    assert upcoming.above_max and upcoming.charge_on == bill.due_date

    autopay_pause(enrollment=enrollment)
    assert autopay_upcoming(account=account, today=today) is None
