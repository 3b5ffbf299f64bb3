"""Autopay's idempotency keys are salted with the database's own key (billing.models.Installation): a database made
anew (or a second one) against the same gateway account never repeats a key an earlier one sent. Stripe answers a
repeated key with the first request's stored result for 24 hours; without the salt, the new database's first charge
would be handed the old database's intent, already confirmed, and record a payment nobody made."""

import pytest
from django.core.management import call_command

from billing.models import AutopayCharge, Installation
from tests.billing.autopay_support import Driver, FakeGateway, enroll, make_user, saved_card, use_gateway
from tests.factories import BillerFactory, CustomerAccountFactory, make_bill


class KeyedGateway(FakeGateway):
    """FakeGateway that keeps its answers by idempotency key, as Stripe does (localstripe ignores keys)."""

    def __init__(self, behaviour):
        super().__init__(behaviour)
        self.answers = {}

    def create_payment_intent(self, *, idempotency_key, **kwargs):
        if idempotency_key not in self.answers:
            self.answers[idempotency_key] = super().create_payment_intent(idempotency_key=idempotency_key, **kwargs)
        return self.answers[idempotency_key]

    def confirm_payment_intent(self, intent_id, *, idempotency_key, **kwargs):
        if idempotency_key not in self.answers:
            self.answers[idempotency_key] = super().confirm_payment_intent(
                intent_id, idempotency_key=idempotency_key, **kwargs
            )
        return self.answers[idempotency_key]


@pytest.mark.django_db(transaction=True)
def test_a_database_made_anew_never_repeats_an_idempotency_key(django_user_model, monkeypatch,
                                                               django_capture_on_commit_callbacks):  # fmt: skip
    gateway = KeyedGateway({})
    use_gateway(monkeypatch, gateway)
    driver = Driver(django_capture_on_commit_callbacks)

    def first_charge_of_a_new_database() -> AutopayCharge:
        account = CustomerAccountFactory(biller=BillerFactory())
        user = make_user(django_user_model, email="payer@example.com")
        enroll(account, user, saved_card(user, "pm_default", default=True))
        make_bill(account, amounts=(4200,), due_in_days=0)
        driver.plan()
        assert driver.run() == [AutopayCharge.Status.SUCCEEDED]
        return AutopayCharge.objects.select_related("payment").get()  # the payment read now, before any flush

    call_command("flush", interactive=False, verbosity=0)  # a new database: its sequences start at 1
    first = first_charge_of_a_new_database()
    call_command("flush", interactive=False, verbosity=0)  # the database made anew: the same primary keys again
    second = first_charge_of_a_new_database()

    assert (second.pk, second.attempt_number) == (first.pk, first.attempt_number)  # the same row, in a new database
    first, second = first.payment, second.payment
    assert second.idempotency_key != first.idempotency_key
    assert second.gateway_payment_id != first.gateway_payment_id
    assert len(gateway.succeeded()) == 2  # two charges made, not one charge recorded twice
    assert Installation.objects.count() == 1


@pytest.mark.django_db
def test_the_key_is_made_once_and_kept(account, django_user_model, monkeypatch, django_capture_on_commit_callbacks):
    from billing.payments.attempts import install_key, install_key_forget

    install_key_forget()
    key = install_key()
    assert Installation.objects.get().key == key and len(key) == 16
    install_key_forget()
    assert install_key() == key  # read back from its row, not made again


@pytest.mark.django_db
def test_every_key_made_from_our_primary_keys_carries_the_database_key(account):
    """A guest payment's, a refund's and a gateway attempt's keys are `<kind>-<install>-<pk>`: a database made anew
    (a new install key) never repeats one an earlier database sent (the gateway keeps a key's answer a day)."""
    from billing.payments.attempts import install_key, install_key_forget, our_key

    first = our_key("payment", 1)
    assert first == f"payment-{install_key()}-1"
    Installation.objects.all().delete()  # as a database made anew
    install_key_forget()
    assert our_key("payment", 1) != first and our_key("refund", 1) != first.replace("payment", "refund")
