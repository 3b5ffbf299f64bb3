"""The staff admin: change lists, bill actions, offline payments and who may do what."""

import datetime as dt
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.bills.services import bill_recalculate, bill_void
from billing.errors import ApplicationError
from billing.models import Bill, BillingEvent, BillLine, Payment, PaymentAttempt
from billing.payments.offline import payment_record_offline
from tests.factories import BillerFactory, CustomerAccountFactory, make_bill
from tests.staff_support import staff_login

BILLS = reverse("admin:billing_bill_changelist")


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def listed(response) -> set[str]:
    return {str(obj) for obj in response.context["cl"].result_list}


def run_action(client, action, bills, **extra):
    data = {"action": action, "_selected_action": [b.pk for b in bills], **extra}
    return client.post(BILLS, data)


@pytest.fixture
def roles(db):
    call_command("setup_roles", stdout=StringIO())


def _staff(django_user_model, email, group=None):
    user = django_user_model.objects.create_user(email=email, password="pw-Staff-123", is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def clerk(roles, django_user_model):
    return _staff(django_user_model, "clerk@riverside.example", "Clerk")


@pytest.fixture
def billing_admin(roles, django_user_model):
    return _staff(django_user_model, "boss@riverside.example", "Billing admin")


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_superuser(email="root@riverside.example", password="pw-Root-123")


@pytest.fixture
def superclient(client, admin_user):
    staff_login(client, admin_user)
    return client


@pytest.fixture
def today(biller):
    return timezone.localdate()


# --- change lists --------------------------------------------------------------------------------------------------


def test_bill_search_finds_by_account_holder_email_postal_code_and_number(superclient, biller):
    alice = CustomerAccountFactory(
        biller=biller, account_number="ACC-111", holder_name="Alice Waterman", email="alice@mail.example",
        postal_code="K1A 0B1",
    )
    bob = CustomerAccountFactory(
        biller=biller, account_number="ACC-222", holder_name="Bob Fontaine", email="bob@mail.example",
        postal_code="90210",
    )
    make_bill(alice, number="INV-ALICE")
    make_bill(bob, number="INV-BOB")

    for term in ("ACC-111", "waterman", "alice@mail", "K1A", "INV-ALICE"):
        response = superclient.get(BILLS, {"q": term})
        assert response.status_code == 200
        assert listed(response) == {"INV-ALICE"}, term
    assert listed(superclient.get(BILLS, {"q": "90210"})) == {"INV-BOB"}
    assert listed(superclient.get(BILLS, {"q": "nobody"})) == set()


def test_bill_list_shows_money_in_the_bill_currency(superclient, db):
    kwd = BillerFactory(slug="kuwait-power", name="Kuwait Power", currency="KWD")
    make_bill(CustomerAccountFactory(biller=kwd), amounts=(12345,), number="KW-1")
    content = superclient.get(BILLS).content.decode()
    assert "KWD" in content and "12.345" in content


def test_status_and_biller_filters(superclient, biller, account):
    other = BillerFactory(slug="city-of-oak", name="City of Oak")
    make_bill(account, number="OPEN-1")
    make_bill(account, number="DRAFT-1", issue=False)
    make_bill(CustomerAccountFactory(biller=other), number="OAK-1")

    assert listed(superclient.get(BILLS, {"status__exact": "draft"})) == {"DRAFT-1"}
    assert listed(superclient.get(BILLS, {"status__exact": "open"})) == {"OPEN-1", "OAK-1"}
    assert listed(superclient.get(BILLS, {"biller__id__exact": other.pk})) == {"OAK-1"}


def test_due_filter_splits_unpaid_bills_by_due_date(superclient, account, today):
    make_bill(account, number="LATE", due_in_days=-3, today=today)
    make_bill(account, number="TODAY", due_in_days=0, today=today)
    make_bill(account, number="SOON", due_in_days=7, today=today)
    make_bill(account, number="LATER", due_in_days=8, today=today)
    make_bill(account, number="DRAFT-LATE", due_in_days=-3, today=today, issue=False)
    paid = make_bill(account, number="PAID-LATE", due_in_days=-10, today=today)
    payment_record_offline(account=account, amount=paid.total, method="cash")  # oldest due first: PAID-LATE

    assert listed(superclient.get(BILLS, {"due": "overdue"})) == {"LATE"}
    assert listed(superclient.get(BILLS, {"due": "next7"})) == {"TODAY", "SOON"}
    assert listed(superclient.get(BILLS, {"due": "later"})) == {"LATER"}


def test_due_filter_uses_each_billers_own_today(superclient, db):
    # Kiritimati (UTC+14) is always one or two calendar days ahead of Pago Pago (UTC-11).
    ahead = BillerFactory(slug="ahead", time_zone="Pacific/Kiritimati")
    behind = BillerFactory(slug="behind", time_zone="Pacific/Pago_Pago")
    behind_today = timezone.localdate(timezone=dt.timezone(dt.timedelta(hours=-11)))
    for biller, number in ((ahead, "AHEAD"), (behind, "BEHIND")):
        make_bill(CustomerAccountFactory(biller=biller), number=number, due_in_days=0, today=behind_today)

    assert listed(superclient.get(BILLS, {"due": "overdue"})) == {"AHEAD"}
    assert listed(superclient.get(BILLS, {"due": "next7"})) == {"BEHIND"}


def _queries_for(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:billing_bill_changelist",
        "admin:billing_customeraccount_changelist",
        "admin:billing_payment_changelist",
        "admin:billing_billingevent_changelist",
    ],
)
def test_change_lists_use_the_same_number_of_queries_for_2_and_30_rows(
    superclient, biller, django_assert_max_num_queries, url_name
):
    def add_bills(n):
        for _ in range(n):
            account = CustomerAccountFactory(biller=biller)
            bill = make_bill(account)
            payment_record_offline(account=account, amount=1000, method="cash")
            assert bill.pk

    url = reverse(url_name)
    add_bills(2)
    queries_for_two = _queries_for(superclient, url)
    add_bills(28)
    with django_assert_max_num_queries(queries_for_two):
        response = superclient.get(url)
    assert response.context["cl"].result_count >= 30


def test_account_list_shows_the_open_balance(superclient, account):
    make_bill(account, amounts=(5000,))
    make_bill(account, amounts=(2500,))
    make_bill(account, amounts=(9900,), issue=False)  # a draft is not owed
    payment_record_offline(account=account, amount=1000, method="cash")
    response = superclient.get(reverse("admin:billing_customeraccount_changelist"))
    [row] = response.context["cl"].result_list
    assert row.open_balance == 6500
    assert "$65.00" in response.content.decode()


def test_account_page_lists_its_bills_and_the_payment_button(superclient, account):
    bill = make_bill(account, number="INV-ON-PAGE")
    response = superclient.get(reverse("admin:billing_customeraccount_change", args=[account.pk]))
    content = response.content.decode()
    assert reverse("admin:billing_bill_change", args=[bill.pk]) in content
    assert reverse("admin:billing_customeraccount_record_payment", args=[account.pk]) in content


# --- bill actions ----------------------------------------------------------------------------------------------------


def test_issue_action_opens_drafts_and_records_the_staff_user(superclient, admin_user, account):
    drafts = [make_bill(account, issue=False) for _ in range(2)]
    response = run_action(superclient, "issue_bills", drafts)
    assert response.status_code == 302
    for bill in drafts:
        bill.refresh_from_db()
        assert bill.status == Bill.Status.OPEN
        event = bill.events.get(kind=BillingEvent.Kind.BILL_STATUS)
        assert (event.from_status, event.to_status, event.actor) == ("draft", "open", admin_user)
    assert any("Issued 2 bills" in m for m in messages_of(response))


def test_one_refused_bill_neither_stops_nor_undoes_the_others(superclient, account):
    first, last = make_bill(account, issue=False), make_bill(account, issue=False)
    already_open = make_bill(account, number="ALREADY-OPEN")
    response = run_action(superclient, "issue_bills", [first, already_open, last])
    statuses = {b.number: Bill.objects.get(pk=b.pk).status for b in (first, already_open, last)}
    assert set(statuses.values()) == {Bill.Status.OPEN}
    msgs = messages_of(response)
    assert any("Issued 2 bills" in m for m in msgs)
    assert any(m.startswith("ALREADY-OPEN:") and "already been issued" in m for m in msgs)


def test_void_asks_for_a_reason_then_voids_with_it(superclient, admin_user, account):
    bill = make_bill(account)
    page = run_action(superclient, "void_bills", [bill])
    assert page.status_code == 200
    assert "Reason" in page.content.decode()
    bill.refresh_from_db()
    assert bill.status == Bill.Status.OPEN  # nothing happens before the confirmation

    no_reason = run_action(superclient, "void_bills", [bill], confirm="1", reason="  ")
    assert no_reason.status_code == 200
    assert no_reason.context["form"].errors
    bill.refresh_from_db()
    assert bill.status == Bill.Status.OPEN

    done = run_action(superclient, "void_bills", [bill], confirm="1", reason="Duplicate of INV-9")
    assert done.status_code == 302
    bill.refresh_from_db()
    assert bill.status == Bill.Status.VOID
    event = bill.events.get(to_status=Bill.Status.VOID)
    assert (event.actor, event.message) == (admin_user, "Duplicate of INV-9")
    assert any("Voided 1 bill" in m for m in messages_of(done))


@pytest.mark.parametrize(
    ("setup", "action", "error"),
    [
        ("paid", "void_bills", "has payments on it"),
        ("paid", "mark_uncollectible", "cannot become"),
        ("void", "void_bills", "cannot become"),
        ("draft", "mark_uncollectible", "cannot become"),
    ],
)
def test_illegal_transitions_show_the_error_and_change_nothing(superclient, account, setup, action, error):
    bill = make_bill(account, issue=setup != "draft")
    if setup == "paid":
        payment_record_offline(account=account, amount=bill.total, method="cash")
    elif setup == "void":
        bill_void(bill=bill)
    bill.refresh_from_db()
    before, events_before = bill.status, BillingEvent.objects.count()

    response = run_action(superclient, action, [bill], confirm="1", reason="Testing")
    bill.refresh_from_db()
    assert bill.status == before
    assert BillingEvent.objects.count() == events_before
    msgs = messages_of(response)
    assert any(bill.number in m and error in m for m in msgs), msgs


def test_mark_uncollectible_writes_the_bill_off(superclient, admin_user, account):
    bill = make_bill(account)
    run_action(superclient, "mark_uncollectible", [bill], confirm="1", reason="Customer gone")
    bill.refresh_from_db()
    assert bill.status == Bill.Status.UNCOLLECTIBLE
    assert bill.events.filter(to_status="uncollectible", actor=admin_user, message="Customer gone").count() == 1


# --- entering and editing bills ------------------------------------------------------------------------------------


def _management(prefix, total, initial=0):
    return {f"{prefix}-TOTAL_FORMS": total, f"{prefix}-INITIAL_FORMS": initial, f"{prefix}-MIN_NUM_FORMS": 0,
            f"{prefix}-MAX_NUM_FORMS": 1000}


def _bill_form(account, number, lines, *, initial_forms=0, line_ids=()):
    """POST data for the bill add/change page, as the browser sends it (read-only inlines have management forms)."""
    data = {
        "account": account.pk,
        "number": number,
        "period_start": "2026-01-01",
        "period_end": "2026-01-31",
        "due_date": "2026-02-20",
        **_management("lines", len(lines), initial_forms),
        **_management("allocations", 0),
        **_management("events", 0),
    }
    for i, line in enumerate(lines):
        for key, value in line.items():
            data[f"lines-{i}-{key}"] = value
        if i < len(line_ids):
            data[f"lines-{i}-id"] = line_ids[i]
            data[f"lines-{i}-bill"] = ""
    return data


def test_staff_enter_a_draft_whose_totals_come_from_the_lines(superclient, admin_user, account):
    lines = [
        {"position": 1, "description": "Water", "quantity": "12.5", "unit_price": "2.10", "tax": "1.05"},
        {"position": 2, "description": "Service charge", "quantity": "1", "unit_price": "8", "tax": ""},
    ]
    response = superclient.post(reverse("admin:billing_bill_add"), _bill_form(account, "NEW-1", lines))
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    bill = Bill.objects.get(number="NEW-1")
    assert (bill.status, bill.biller_id, bill.currency) == (Bill.Status.DRAFT, account.biller_id, "USD")
    assert [line.amount for line in bill.lines.all()] == [2625, 800]  # 12.5 × 2.10 = 26.25
    assert (bill.subtotal, bill.tax, bill.total) == (3425, 105, 3530)
    created = bill.events.get(kind=BillingEvent.Kind.BILL_CREATED)
    assert (created.actor, created.amount) == (admin_user, 3530)


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ([], "at least one line"),
        ([{"position": 1, "description": "Water", "quantity": "1", "unit_price": "2.105"}], "at most 2 decimal"),
        ([{"position": 1, "description": "Water", "quantity": "1", "unit_price": "ten"}], "as a number"),
    ],
)
def test_a_bill_with_bad_lines_is_not_saved(superclient, account, lines, error):
    response = superclient.post(reverse("admin:billing_bill_add"), _bill_form(account, "BAD-1", lines))
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Bill.objects.filter(number="BAD-1").exists()


def test_a_duplicate_bill_number_is_refused(superclient, account):
    make_bill(account, number="DUP-1")
    lines = [{"position": 1, "description": "Water", "quantity": "1", "unit_price": "5"}]
    response = superclient.post(reverse("admin:billing_bill_add"), _bill_form(account, "DUP-1", lines))
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Bill.objects.filter(number="DUP-1").count() == 1


def test_editing_a_draft_recomputes_its_totals(superclient, account):
    bill = make_bill(account, amounts=(1000,), issue=False)
    line = bill.lines.get()
    url = reverse("admin:billing_bill_change", args=[bill.pk])
    assert 'name="lines-0-unit_price" value="10.00"' in superclient.get(url).content.decode()
    lines = [
        {"position": 0, "description": "Charge 1", "quantity": "2", "unit_price": "10.00", "tax": "0.00"},
        {"position": 1, "description": "Late fee", "quantity": "1", "unit_price": "4.50", "tax": "0"},
    ]
    data = _bill_form(account, bill.number, lines, initial_forms=1, line_ids=[line.pk])
    response = superclient.post(url, data)
    assert response.status_code == 302
    bill.refresh_from_db()
    assert (bill.subtotal, bill.total, bill.lines.count()) == (2450, 2450, 2)


def test_an_issued_bill_cannot_be_edited(superclient, account):
    bill = make_bill(account, amounts=(1000,))
    line = bill.lines.get()
    lines = [{"position": 0, "description": "Charge 1", "quantity": "5", "unit_price": "10.00", "tax": "0"}]
    data = _bill_form(account, bill.number, lines, initial_forms=1, line_ids=[line.pk])
    url = reverse("admin:billing_bill_change", args=[bill.pk])
    assert superclient.post(url, data).status_code == 403
    page = superclient.get(url)
    assert page.status_code == 200 and 'name="lines-0-unit_price"' not in page.content.decode()
    bill.refresh_from_db()
    assert (bill.total, BillLine.objects.get(pk=line.pk).amount) == (1000, 1000)


def test_bill_recalculate_refuses_an_issued_bill(account):
    bill = make_bill(account)
    with pytest.raises(ApplicationError, match="can no longer change"):
        bill_recalculate(bill=bill)


# --- offline payments ------------------------------------------------------------------------------------------------


def record_url(account):
    return reverse("admin:billing_customeraccount_record_payment", args=[account.pk])


def test_offline_payment_form_shows_the_open_balance(superclient, account):
    make_bill(account, amounts=(4250,))
    response = superclient.get(record_url(account))
    assert response.status_code == 200
    assert "$42.50" in response.content.decode()


def test_recording_an_offline_cheque_pays_the_bill(superclient, admin_user, account, today):
    bill = make_bill(account, amounts=(4250,))
    response = superclient.post(
        record_url(account),
        {"amount": "42.50", "method": "cheque", "reference": "001234", "received_on": today.isoformat()},
    )
    assert response.status_code == 302
    payment = Payment.objects.get()
    assert (payment.amount, payment.method, payment.reference, payment.recorded_by) == (
        4250, "cheque", "001234", admin_user,
    )
    assert payment.channel == Payment.Channel.STAFF_OFFLINE
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID
    assert any(payment.confirmation_number in m for m in messages_of(response))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"amount": "abc"}, "Enter the amount as a number"),
        ({"amount": "-5"}, "must be more than zero"),
        ({"amount": "0"}, "must be more than zero"),
        ({"amount": "12.345"}, "USD amounts have at most 2 decimal places"),
        ({"amount": "12,50"}, "Enter the amount as a number"),
        ({"amount": "50.01"}, "more than the $50.00 owed"),
        ({"method": "cheque", "reference": " "}, "Enter the cheque number"),
        ({"method": "card"}, "Select a valid choice"),
        ({"received_on": "2999-01-01"}, "cannot be in the future"),
    ],
)
def test_offline_payment_form_refuses_bad_input_and_saves_nothing(superclient, account, today, data, error):
    make_bill(account, amounts=(5000,))
    events_before = BillingEvent.objects.count()
    form = {"amount": "10", "method": "cash", "reference": "", "received_on": today.isoformat(), **data}
    response = superclient.post(record_url(account), form)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert Payment.objects.count() == 0
    assert BillingEvent.objects.count() == events_before


# --- who may do what -------------------------------------------------------------------------------------------------


def test_non_staff_users_are_sent_to_the_login_page(client, django_user_model, account):
    payer = django_user_model.objects.create_user(email="payer@example.com", password="pw-Payer-123")
    client.force_login(payer)
    for url in (BILLS, record_url(account)):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("admin:login"))


def test_clerk_views_bills_but_cannot_issue_void_or_change_them(client, clerk, account):
    draft = make_bill(account, issue=False)
    staff_login(client, clerk)

    page = client.get(BILLS)
    assert page.status_code == 200
    action_form = page.context["action_form"]  # None when the user has no action at all
    actions = {name for name, _label in action_form.fields["action"].choices} if action_form else set()
    assert not actions & {"issue_bills", "void_bills", "mark_uncollectible", "delete_selected"}
    assert client.get(reverse("admin:billing_bill_change", args=[draft.pk])).status_code == 200

    run_action(client, "issue_bills", [draft])
    run_action(client, "void_bills", [draft], confirm="1", reason="nope")
    draft.refresh_from_db()
    assert draft.status == Bill.Status.DRAFT
    assert not draft.events.filter(kind=BillingEvent.Kind.BILL_STATUS).exists()

    lines = [{"position": 0, "description": "Charge 1", "quantity": "9", "unit_price": "1"}]
    change = client.post(reverse("admin:billing_bill_change", args=[draft.pk]), _bill_form(account, "X", lines))
    assert change.status_code == 403
    assert client.get(reverse("admin:billing_bill_add")).status_code == 403


def test_clerk_records_an_offline_payment(client, clerk, account, today):
    make_bill(account, amounts=(3000,))
    staff_login(client, clerk)
    page = client.get(reverse("admin:billing_customeraccount_change", args=[account.pk]))
    assert record_url(account) in page.content.decode()
    response = client.post(
        record_url(account), {"amount": "30", "method": "cash", "received_on": today.isoformat()}
    )
    assert response.status_code == 302
    assert Payment.objects.get().recorded_by == clerk


def test_staff_without_the_permission_cannot_record_payments(client, staff_user, account, today):
    make_bill(account, amounts=(3000,))
    staff_login(client, staff_user)
    assert client.get(record_url(account)).status_code == 403
    response = client.post(record_url(account), {"amount": "30", "method": "cash", "received_on": today.isoformat()})
    assert response.status_code == 403
    assert Payment.objects.count() == 0


def test_billing_admin_can_do_everything(client, billing_admin, account, today):
    staff_login(client, billing_admin)
    lines = [{"position": 1, "description": "Water", "quantity": "1", "unit_price": "20"}]
    assert client.post(reverse("admin:billing_bill_add"), _bill_form(account, "BOSS-1", lines)).status_code == 302
    bill = Bill.objects.get(number="BOSS-1")
    run_action(client, "issue_bills", [bill])
    bill.refresh_from_db()
    assert bill.status == Bill.Status.OPEN

    response = client.post(record_url(account), {"amount": "5", "method": "cash", "received_on": today.isoformat()})
    assert response.status_code == 302

    other = make_bill(account)
    run_action(client, "mark_uncollectible", [other], confirm="1", reason="Gone")
    other.refresh_from_db()
    assert other.status == Bill.Status.UNCOLLECTIBLE

    third = make_bill(account)
    run_action(client, "void_bills", [third], confirm="1", reason="Wrong meter")
    third.refresh_from_db()
    assert third.status == Bill.Status.VOID
    assert client.get(reverse("admin:billing_biller_change", args=[account.biller_id])).status_code == 200


@pytest.mark.parametrize("model", ["paymentattempt", "refund", "billingevent"])
def test_history_admins_are_read_only_even_for_superusers(superclient, account, model):
    assert superclient.get(reverse(f"admin:billing_{model}_changelist")).status_code == 200
    assert superclient.get(reverse(f"admin:billing_{model}_add")).status_code == 403


def test_history_rows_cannot_be_changed_or_deleted(superclient, account):
    make_bill(account)
    event = BillingEvent.objects.first()
    url = reverse("admin:billing_billingevent_change", args=[event.pk])
    assert superclient.get(url).status_code == 200  # viewable
    assert superclient.post(url, {"message": "rewritten"}).status_code == 403
    delete_url = reverse("admin:billing_billingevent_delete", args=[event.pk])
    assert superclient.post(delete_url, {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.message != "rewritten"


def test_payments_cannot_be_added_in_the_admin_and_show_their_history(superclient, account):
    make_bill(account, amounts=(2000,))
    payment = payment_record_offline(account=account, amount=2000, method="cash")
    PaymentAttempt.objects.create(payment=payment, kind="create", amount=2000, currency="USD", outcome="succeeded")
    assert superclient.get(reverse("admin:billing_payment_add")).status_code == 403
    page = superclient.get(reverse("admin:billing_payment_change", args=[payment.pk]))
    assert page.status_code == 200
    content = page.content.decode()
    assert "$20.00" in content and "Create intent" in content and "Payment recorded" in content
    assert 'name="amount"' not in content
