"""Saved payment methods (billing/methods/): setup, default and backup, removal, and which accounts a saved card may
pay; against localstripe."""

import pytest
import stripe
from django.db import IntegrityError, transaction

from accounts.models import AccountLink
from accounts.services import account_link_grant
from billing.autopay.enrolment import autopay_cancel, autopay_enroll
from billing.errors import ApplicationError
from billing.methods.selectors import user_payment_methods
from billing.methods.services import (
    gateway_customer_get_or_create,
    payment_method_attach,
    payment_method_make_backup,
    payment_method_make_default,
    payment_method_may_pay,
    payment_method_remove,
    payment_method_save_from_setup,
    payment_method_setup_start,
)
from billing.models import AutopayEnrollment, EnrollmentEvent, PaymentMethod
from billing.payments.gateway import get_gateway
from tests.factories import CustomerAccountFactory
from tests.billing.cards_support import (
    CONSENT,
    confirm_setup_in_browser_stand_in,
    enrol,
    gateway_pm,
    linked,
    make_user,
    save_card,
)

pytestmark = pytest.mark.django_db


def test_a_card_confirmed_through_a_setup_intent_is_attached_and_saved(stripe_settings, user):
    method = save_card(user)
    assert (method.brand, method.last4, method.exp_month, method.exp_year) == ("visa", "4242", 12, 2034)
    assert method.is_default and not method.is_backup
    customer = user.gateway_customer.gateway_customer_id
    assert method.gateway_customer_id == customer
    assert gateway_pm(method)["customer"] == customer  # localstripe did not attach it: we did
    assert "Visa ending 4242, expires 12/2034" == method.summary
    assert EnrollmentEvent.objects.filter(kind=EnrollmentEvent.Kind.CARD_ADDED, user=user).count() == 1


def test_a_setup_intent_of_another_login_is_refused(stripe_settings, user, django_user_model):
    other = make_user(django_user_model, "other@example.com")
    setup_id = confirm_setup_in_browser_stand_in(payment_method_setup_start(user=other))
    gateway_customer_get_or_create(user=user)
    with pytest.raises(ApplicationError):
        payment_method_save_from_setup(user=user, setup_intent_id=setup_id)
    assert not PaymentMethod.objects.exists()


def test_an_unconfirmed_setup_intent_saves_nothing(stripe_settings, user):
    secret = payment_method_setup_start(user=user)
    with pytest.raises(ApplicationError):
        payment_method_save_from_setup(user=user, setup_intent_id=secret.split("_secret_")[0])
    assert not PaymentMethod.objects.exists()


def test_a_card_declined_at_setup_is_not_saved(stripe_settings, user):
    secret = payment_method_setup_start(user=user)
    with pytest.raises(stripe.CardError):
        confirm_setup_in_browser_stand_in(secret, number="4000000000000002")
    with pytest.raises(ApplicationError):
        payment_method_save_from_setup(user=user, setup_intent_id=secret.split("_secret_")[0])
    assert not PaymentMethod.objects.exists()


def test_one_default_and_one_backup_and_swapping_them(stripe_settings, user):
    first, second, third = save_card(user), save_card(user, "5555555555554444"), save_card(user, "4000056655665556")
    assert [m.is_default for m in (first, second, third)] == [True, False, False]

    payment_method_make_backup(user=user, payment_method=second)
    payment_method_make_backup(user=user, payment_method=third)  # the backup moves, never two
    roles = {m.pk: (m.is_default, m.is_backup) for m in PaymentMethod.objects.all()}
    assert roles == {first.pk: (True, False), second.pk: (False, False), third.pk: (False, True)}

    payment_method_make_default(user=user, payment_method=third)  # the backup promoted: a swap
    roles = {m.pk: (m.is_default, m.is_backup) for m in PaymentMethod.objects.all()}
    assert roles == {first.pk: (False, True), second.pk: (False, False), third.pk: (True, False)}

    with pytest.raises(ApplicationError):
        payment_method_make_backup(user=user, payment_method=third)  # the default cannot be the backup


def test_the_database_refuses_two_defaults_or_two_backups(stripe_settings, user):
    first, second = save_card(user), save_card(user, "5555555555554444")
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentMethod.objects.filter(pk=second.pk).update(is_default=True)
    PaymentMethod.objects.filter(pk=second.pk).update(is_backup=True)
    third = save_card(user, "4000056655665556")
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentMethod.objects.filter(pk=third.pk).update(is_backup=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentMethod.objects.filter(pk=first.pk).update(is_backup=True)  # default and backup at once


def test_removing_detaches_and_the_backup_becomes_default(stripe_settings, user):
    first, second = save_card(user), save_card(user, "5555555555554444")
    payment_method_make_backup(user=user, payment_method=second)
    payment_method_remove(user=user, payment_method=first)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.removed_at is not None and not first.is_default
    assert gateway_pm(first)["customer"] is None
    assert second.is_default and not second.is_backup
    assert list(user_payment_methods(user=user)) == [second]


def test_someone_elses_card_cannot_be_changed(stripe_settings, user, django_user_model):
    other = make_user(django_user_model, "other@example.com")
    theirs = save_card(other)
    for action in (payment_method_make_default, payment_method_make_backup):
        gateway_customer_get_or_create(user=user)
        with pytest.raises(ApplicationError):
            action(user=user, payment_method=theirs)
    with pytest.raises(ApplicationError):
        payment_method_remove(user=user, payment_method=theirs)
    assert gateway_pm(theirs)["customer"] == other.gateway_customer.gateway_customer_id


def test_a_card_that_pays_autopay_cannot_be_removed(stripe_settings, account, user):
    linked(user, account)
    method = save_card(user)
    enrollment = enrol(account, user, method)
    with pytest.raises(ApplicationError, match=account.account_number):
        payment_method_remove(user=user, payment_method=method)
    autopay_cancel(enrollment=enrollment)
    payment_method_remove(user=user, payment_method=method)


def test_a_saved_card_pays_only_accounts_reached_through_the_lookup_or_a_proven_link(
    stripe_settings, account, user, django_user_model
):
    from accounts.services import account_link_grant

    card = save_card(user)
    old = CustomerAccountFactory(biller=account.biller)
    account_link_grant(user=user, account=old, via=AccountLink.Via.GUEST_RECEIPT)  # made before links proved anything
    assert not payment_method_may_pay(user=user, account=old)
    with pytest.raises(ApplicationError):
        autopay_enroll(
            account=old, user=user, payment_method=card, charge_rule="on_due_date", consent_text=CONSENT
        )
    assert not AutopayEnrollment.objects.exists()
    account_link_grant(user=user, account=old, via=AccountLink.Via.LOOKUP)  # the lookup raises the link's origin
    assert payment_method_may_pay(user=user, account=old)
    autopay_enroll(account=old, user=user, payment_method=card, charge_rule="on_due_date", consent_text=CONSENT)


@pytest.mark.django_db(transaction=True)
def test_two_first_cards_saved_at_once_make_exactly_one_default(require_postgres, stripe_settings, django_user_model):
    """Two tabs each save a first card at the same moment: the lock on the login's gateway customer row makes one
    of them the default and the other a plain saved card (without it, both would see "no default yet")."""
    import threading

    from django.db import connection

    user = make_user(django_user_model)
    ids = []
    for number in ("4242424242424242", "5555555555554444"):
        secret = payment_method_setup_start(user=user)
        setup_id = confirm_setup_in_browser_stand_in(secret, number)
        ids.append(get_gateway().retrieve_setup_intent(setup_id).payment_method_id)
    barrier, errors = threading.Barrier(2), []

    def save(pm_id):
        try:
            barrier.wait()
            payment_method_attach(user=user, gateway_payment_method_id=pm_id)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=save, args=(pm_id,)) for pm_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(PaymentMethod.objects.filter(user=user).values_list("is_default", flat=True)) == [False, True]
