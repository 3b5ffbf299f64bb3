"""Saved cards, paperless and autopay services (billing/methods/, billing/enrolment/, billing/autopay/enrolment.py),
against localstripe where a card is involved."""

import datetime as dt
import hashlib
import re

import pytest
import stripe
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.guest_enrolment import guest_autopay_complete
from accounts.models import AccountLink
from accounts.services import account_link_grant
from billing.autopay.enrolment import autopay_cancel, autopay_enroll, autopay_pause, autopay_resume, autopay_transition
from billing.autopay.selectors import autopay_upcoming
from billing.enrolment.guest import (
    GUEST_CODE_MAX_ATTEMPTS,
    GUEST_CODE_MAX_SENDS,
    guest_enrollment_links_send,
    guest_enrollment_record,
    guest_link_code_check,
    guest_link_code_send,
    guest_paperless_confirm,
)
from billing.enrolment.links import token_hash
from billing.enrolment.paperless import paperless_cancel, paperless_current, paperless_enroll
from billing.enrolment.selectors import paper_bill_accounts
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
from billing.models import (
    AutopayEnrollment,
    EnrollmentEvent,
    GuestEnrollmentLink,
    GuestEnrollmentRequest,
    PaperlessEnrollment,
    Payment,
    PaymentMethod,
)
from billing.payments.core import confirmation_number_new
from billing.payments.gateway import get_gateway
from tests import stripe_support
from tests.factories import CustomerAccountFactory, make_bill

pytestmark = pytest.mark.django_db

CONSENT = "I agree (as shown in the test)."


def make_user(django_user_model, email="payer@example.com"):
    user = django_user_model.objects.create_user(email=email, password="A-payer-Passw0rd!")
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


@pytest.fixture
def user(django_user_model):
    return make_user(django_user_model)


def _stripe():
    return stripe.StripeClient(
        stripe_support.SECRET_KEY, base_addresses={"api": settings.STRIPE_API_BASE}, max_network_retries=0
    )


def confirm_setup_in_browser_stand_in(client_secret: str, number: str = "4242424242424242", exp_year: int = 2034):
    """What stripe.confirmCardSetup does in the browser: confirm the SetupIntent with the card. Returns its id."""
    setup_id = client_secret.split("_secret_")[0]
    card = {"number": number, "exp_month": "12", "exp_year": str(exp_year), "cvc": "123"}
    _stripe().v1.setup_intents.confirm(setup_id, params={"payment_method_data": {"type": "card", "card": card}})
    return setup_id


def save_card(user, number="4242424242424242", exp_year=2034) -> PaymentMethod:
    secret = payment_method_setup_start(user=user)
    setup_id = confirm_setup_in_browser_stand_in(secret, number, exp_year)
    return payment_method_save_from_setup(user=user, setup_intent_id=setup_id, ip="203.0.113.5")


def gateway_pm(method: PaymentMethod) -> dict:
    return _stripe().v1.payment_methods.retrieve(method.gateway_payment_method_id).to_dict()


def linked(user, account):
    account_link_grant(user=user, account=account, via=AccountLink.Via.LOOKUP)
    return account


# --- Saved cards -------------------------------------------------------------------------------------------------------


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


# --- Paperless ----------------------------------------------------------------------------------------------------------


def test_paperless_enrol_and_cancel_keep_consent_and_ip(account, user):
    enrollment = paperless_enroll(
        account=account, email="bills@example.com", consent_text=CONSENT, ip="198.51.100.7",
        via=PaperlessEnrollment.Via.PORTAL, user=user,
    )  # fmt: skip
    assert (enrollment.consent_text, enrollment.ip, enrollment.user) == (CONSENT, "198.51.100.7", user)
    assert enrollment.consented_at is not None and enrollment.is_active
    same = paperless_enroll(
        account=account, email="Bills@example.com", consent_text=CONSENT, ip="198.51.100.8",
        via=PaperlessEnrollment.Via.PORTAL,
    )  # fmt: skip
    assert same.pk == enrollment.pk  # the same address: nothing new to consent to

    ended = paperless_cancel(account=account, ip="198.51.100.9", user=user)
    assert ended.pk == enrollment.pk and ended.cancelled_ip == "198.51.100.9" and ended.cancelled_by == user
    assert paperless_current(account=account) is None
    assert paperless_cancel(account=account, ip=None) is None


def test_paperless_to_a_new_address_keeps_the_old_consent_on_record(account):
    old = paperless_enroll(
        account=account, email="a@example.com", consent_text=CONSENT, ip=None, via=PaperlessEnrollment.Via.INVITATION
    )
    new = paperless_enroll(
        account=account, email="b@example.com", consent_text=CONSENT, ip=None, via=PaperlessEnrollment.Via.PORTAL
    )
    old.refresh_from_db()
    assert old.cancelled_at is not None and new.is_active and new.email == "b@example.com"
    with pytest.raises(IntegrityError), transaction.atomic():
        PaperlessEnrollment.objects.filter(pk=old.pk).update(cancelled_at=None)  # one active per account


def test_paper_bill_accounts(biller):
    paper = CustomerAccountFactory(biller=biller)
    make_bill(paper)
    emailed = CustomerAccountFactory(biller=biller)
    make_bill(emailed)
    paperless_enroll(
        account=emailed, email="x@example.com", consent_text=CONSENT, ip=None, via=PaperlessEnrollment.Via.PORTAL
    )
    CustomerAccountFactory(biller=biller)  # no open bill
    draft_only = CustomerAccountFactory(biller=biller)
    make_bill(draft_only, issue=False)
    went_back = CustomerAccountFactory(biller=biller)
    make_bill(went_back)
    paperless_enroll(
        account=went_back, email="y@example.com", consent_text=CONSENT, ip=None, via=PaperlessEnrollment.Via.PORTAL
    )
    paperless_cancel(account=went_back, ip=None)
    assert list(paper_bill_accounts()) == sorted([paper, went_back], key=lambda a: a.account_number)


# --- Autopay ------------------------------------------------------------------------------------------------------------


def enrol(account, user, method, **kwargs):
    values = {"charge_rule": AutopayEnrollment.ChargeRule.ON_DUE_DATE, "consent_text": CONSENT, "ip": "192.0.2.1"}
    return autopay_enroll(account=account, user=user, payment_method=method, **(values | kwargs))


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


def test_a_card_that_pays_autopay_cannot_be_removed(stripe_settings, account, user):
    linked(user, account)
    method = save_card(user)
    enrollment = enrol(account, user, method)
    with pytest.raises(ApplicationError, match=account.account_number):
        payment_method_remove(user=user, payment_method=method)
    autopay_cancel(enrollment=enrollment)
    payment_method_remove(user=user, payment_method=method)


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


# --- From a guest payment's receipt -------------------------------------------------------------------------------------


def guest_card_payment(account, email="guest@example.com") -> Payment:
    """A guest payment that really went through localstripe with a card."""
    make_bill(account, amounts=(5000,))
    gateway = get_gateway()
    intent = gateway.create_payment_intent(amount=5000, currency="usd", idempotency_key=f"test-{account.pk}")
    intent = gateway.confirm_payment_intent(
        intent.id, idempotency_key=f"test-{account.pk}:c", payment_method="pm_card_visa"
    )
    assert intent.succeeded
    return Payment.objects.create(
        biller=account.biller, account=account, confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.GUEST_WEB, method=Payment.Method.CARD, status=Payment.Status.SUCCEEDED,
        currency="USD", amount=5000, payer_email=email, gateway_payment_id=intent.id,
        payment_method_summary="Visa •••• 4242", received_at=timezone.now(), save_card_requested=True,
    )  # fmt: skip


def link_token(body: str, kind: str) -> str:
    return re.search(rf"/me/enrol/{kind}/([^/\s]+)/", body).group(1)


def test_guest_links_are_sent_once_per_choice_and_only_a_hash_is_kept(account, mailoutbox):
    payment = Payment.objects.create(
        biller=account.biller, account=account, confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.GUEST_WEB, method=Payment.Method.CARD, status=Payment.Status.SUCCEEDED,
        currency="USD", amount=5000, payer_email="guest@example.com", received_at=timezone.now(),
    )  # fmt: skip
    request = guest_enrollment_record(payment=payment, email="guest@example.com", paperless=True)
    assert guest_enrollment_links_send(enrollment_request_id=request.pk) == ["paperless"]
    assert guest_enrollment_links_send(enrollment_request_id=request.pk) == []
    guest_enrollment_record(payment=payment, email="guest@example.com", autopay=True)
    assert guest_enrollment_links_send(enrollment_request_id=request.pk) == ["autopay"]
    assert [m.to for m in mail.outbox] == [["guest@example.com"], ["guest@example.com"]]
    token = link_token(mail.outbox[0].body, "paperless")
    raw = token.split(":")[0]
    assert len(raw) >= 43  # 32 random bytes, base64
    assert not GuestEnrollmentLink.objects.filter(token_hash__contains=raw).exists()
    assert GuestEnrollmentLink.objects.get(purpose="paperless").token_hash == token_hash(raw)


def test_guest_paperless_link_enrols_once_and_expires(account, mailoutbox, client):
    payment = Payment.objects.create(
        biller=account.biller, account=account, confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.GUEST_WEB, method=Payment.Method.CARD, status=Payment.Status.SUCCEEDED,
        currency="USD", amount=5000, payer_email="guest@example.com", received_at=timezone.now(),
    )  # fmt: skip
    request = guest_enrollment_record(payment=payment, email="guest@example.com", paperless=True)
    guest_enrollment_links_send(enrollment_request_id=request.pk)
    token = link_token(mail.outbox[0].body, "paperless")

    enrollment = guest_paperless_confirm(token=token, ip="203.0.113.9")
    assert (enrollment.email, enrollment.via, enrollment.ip) == ("guest@example.com", "guest_receipt", "203.0.113.9")
    assert account.account_number in enrollment.consent_text
    request.refresh_from_db()
    assert request.consumed_at is not None
    with pytest.raises(ApplicationError):
        guest_paperless_confirm(token=token, ip=None)  # single use
    with pytest.raises(ApplicationError):
        guest_paperless_confirm(token=token[:-2] + "xx", ip=None)  # tampered

    GuestEnrollmentLink.objects.update(used_at=None, expires_at=timezone.now() - dt.timedelta(seconds=1))
    with pytest.raises(ApplicationError):
        guest_paperless_confirm(token=token, ip=None)  # expired


def guest_autopay_token(account, email="guest@example.com") -> tuple[str, GuestEnrollmentRequest]:
    payment = guest_card_payment(account, email=email)
    request = guest_enrollment_record(payment=payment, email=email, autopay=True)
    guest_enrollment_links_send(enrollment_request_id=request.pk)
    return link_token(mail.outbox[-1].body, "autopay"), request


def sent_code(link: GuestEnrollmentLink) -> str:
    """Ask for a code as the page does and read it from the e-mail that went to the guest's address."""
    guest_link_code_send(link=link)
    message = mail.outbox[-1]
    assert message.to == [link.request.email]
    return re.search(r"Your code is (\d{6})\.", message.body).group(1)


def test_guest_autopay_needs_the_code_sent_to_the_guest_then_saves_the_card_and_links_the_account(
    stripe_settings, account, mailoutbox
):
    token, request = guest_autopay_token(account)
    link = GuestEnrollmentLink.objects.get(purpose="autopay")
    with pytest.raises(ApplicationError):  # the link alone: no code asked for yet
        guest_autopay_complete(token=token, code="", user=None, ip=None)
    code = sent_code(link)
    link.refresh_from_db()
    assert code not in link.code_hash and link.code_hash != hashlib.sha256(code.encode()).hexdigest()  # keyed
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    with pytest.raises(ApplicationError):
        guest_autopay_complete(token=token, code=wrong, user=None, ip=None)
    link.refresh_from_db()
    assert link.code_attempts == 1
    assert not get_user_model().objects.exists() and not PaymentMethod.objects.exists()

    user, method, created = guest_autopay_complete(token=token, code=code, user=None, ip="203.0.113.10")
    assert created and user.email == "guest@example.com" and not user.has_usable_password()
    assert EmailAddress.objects.get(user=user).verified  # the code proved the mailbox
    assert (method.user, method.last4, method.is_default, method.saved_from_account) == (user, "4242", True, account)
    assert gateway_pm(method)["customer"] == user.gateway_customer.gateway_customer_id
    assert AccountLink.objects.get(user=user, customer_account=account).created_via == "guest_code"
    assert GuestEnrollmentRequest.objects.get(pk=request.pk).consumed_at is not None
    with pytest.raises(ApplicationError):
        guest_autopay_complete(token=token, code=code, user=user, ip=None)  # single use
    assert not AutopayEnrollment.objects.exists()  # turned on only when the payer accepts the mandate


def test_a_guest_code_is_single_use_expires_and_allows_few_wrong_tries(stripe_settings, account, mailoutbox):
    token, _request = guest_autopay_token(account)
    link = GuestEnrollmentLink.objects.get(purpose="autopay")
    code = sent_code(link)
    for _ in range(GUEST_CODE_MAX_ATTEMPTS):
        with pytest.raises(ApplicationError):
            guest_link_code_check(link=link, code="not-it")
    with pytest.raises(ApplicationError):  # the right code, after too many wrong ones
        guest_link_code_check(link=link, code=code)

    code = sent_code(link)  # a new code starts again
    GuestEnrollmentLink.objects.filter(pk=link.pk).update(code_expires_at=timezone.now() - dt.timedelta(seconds=1))
    with pytest.raises(ApplicationError):
        guest_link_code_check(link=link, code=code)

    code = sent_code(link)
    guest_link_code_check(link=link, code=code)
    with pytest.raises(ApplicationError):
        guest_link_code_check(link=link, code=code)
    for _ in range(GUEST_CODE_MAX_SENDS - 3):
        sent_code(link)
    with pytest.raises(ApplicationError):
        guest_link_code_send(link=link)


def test_a_login_of_another_address_gets_nothing_from_a_forwarded_autopay_link_even_with_a_code(
    stripe_settings, account, mailoutbox, django_user_model
):
    token, _request = guest_autopay_token(account)
    stranger = make_user(django_user_model, email="stranger@example.com")
    code = sent_code(GuestEnrollmentLink.objects.get(purpose="autopay"))
    with pytest.raises(ApplicationError):
        guest_autopay_complete(token=token, code=code, user=stranger, ip=None)
    assert not PaymentMethod.objects.exists() and not AccountLink.objects.exists()


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
