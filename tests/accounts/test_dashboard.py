"""The signed-in payer's dashboard, account pages and bill documents: only ever their own linked accounts."""

import pytest
from django.urls import reverse

from accounts.models import AccountLink
from accounts.services import account_link_grant
from billing.models import Payment
from billing.payments import lookup
from billing.payments.offline import payment_record_offline
from tests.factories import CustomerAccountFactory, make_bill

pytestmark = pytest.mark.django_db

# User, verified e-mail, links (the billers and their plan rules come from the shared cache, and so does the session
# once it is there), balances, bills, payments; then autopay and paperless enrolments, and the next bills of accounts
# with autopay on (tests/accounts/test_autopay.py); payment plans: the current plans, their bills and instalments.
# It was 15 before the session and the billers came from the cache.
DASHBOARD_QUERY_BUDGET = 13


def linked(user, account):
    return account_link_grant(user=user, account=account, via=AccountLink.Via.LOOKUP)[0]


def test_dashboard_needs_a_login(client, biller):
    response = client.get(reverse("accounts:dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_dashboard_shows_each_account_with_balance_next_due_bills_and_payments(payer_client, payer, biller):
    first, second = CustomerAccountFactory(biller=biller), CustomerAccountFactory(biller=biller)
    linked(payer, first)
    linked(payer, second)
    soon = make_bill(first, amounts=(4000,), due_in_days=5)
    make_bill(first, amounts=(2500,), due_in_days=35)
    paid = make_bill(second, amounts=(1000,), due_in_days=10)
    payment = payment_record_offline(account=second, amount=1000, method=Payment.Method.CASH)
    make_bill(first, amounts=(9999,), issue=False, number="DRAFT-1")  # a draft is the biller's, not the payer's yet

    html = payer_client.get(reverse("accounts:dashboard")).content.decode()
    assert f"Account {first.account_number}" in html and f"Account {second.account_number}" in html
    assert "$65.00" in html  # first account's balance: 40.00 + 25.00
    assert soon.number in html and paid.number in html
    assert "DRAFT-1" not in html
    assert payment.confirmation_number in html
    assert "Nothing due" in html  # the second account is paid up
    assert reverse("accounts:bill", args=[soon.pk]) in html
    assert reverse("accounts:bill_pdf", args=[soon.pk]) in html
    assert reverse("accounts:pay", args=[first.pk]) in html
    assert reverse("accounts:pay", args=[second.pk]) not in html  # nothing to pay


def test_dashboard_never_shows_someone_elses_account(payer_client, make_payer, biller):
    theirs = CustomerAccountFactory(biller=biller)
    linked(make_payer("other@example.com"), theirs)
    html = payer_client.get(reverse("accounts:dashboard")).content.decode()
    assert theirs.account_number not in html
    assert "No accounts linked yet" in html


def _accounts_with_history(payer, biller, count):
    for _ in range(count):
        account = CustomerAccountFactory(biller=biller)
        linked(payer, account)
        for days in (-20, 10, 40):
            make_bill(account, amounts=(3000,), due_in_days=days)
        payment_record_offline(account=account, amount=500, method=Payment.Method.CASH)


@pytest.mark.parametrize("count", [1, 50])
def test_dashboard_query_count_does_not_grow_with_accounts(
    payer_client, payer, biller, count, django_assert_max_num_queries
):
    _accounts_with_history(payer, biller, count)
    with django_assert_max_num_queries(DASHBOARD_QUERY_BUDGET):
        response = payer_client.get(reverse("accounts:dashboard"))
    assert response.content.decode().count('class="card account-card"') == count


@pytest.mark.parametrize("count", [1, 50])
def test_account_page_query_count_does_not_grow_with_bills(
    payer_client, payer, biller, count, django_assert_max_num_queries
):
    account = CustomerAccountFactory(biller=biller)
    linked(payer, account)
    for i in range(count):
        make_bill(account, amounts=(1000 + i,), due_in_days=i - 25)
    # Session, user, verified e-mail, biller, link, balance, bill count + page, payment count + page, autopay,
    # paperless.
    with django_assert_max_num_queries(12):
        response = payer_client.get(reverse("accounts:account", args=[account.pk]))
    assert response.status_code == 200


def test_account_page_paginates_bills_twelve_at_a_time(payer_client, payer, biller):
    account = CustomerAccountFactory(biller=biller)
    linked(payer, account)
    bills = [make_bill(account, due_in_days=i) for i in range(14)]
    url = reverse("accounts:account", args=[account.pk])
    first_page = payer_client.get(url).content.decode()
    second_page = payer_client.get(url, {"page": 2}).content.decode()
    newest_first = sorted(bills, key=lambda b: (b.due_date, b.pk), reverse=True)
    assert all(b.number in first_page for b in newest_first[:12])
    assert all(b.number not in first_page for b in newest_first[12:])
    assert all(b.number in second_page for b in newest_first[12:])
    assert "Page 1 of 2" in first_page


def test_another_payers_account_page_is_404(payer_client, biller):
    theirs = CustomerAccountFactory(biller=biller)
    assert payer_client.get(reverse("accounts:account", args=[theirs.pk])).status_code == 404


def test_bill_html_and_pdf_for_my_own_bill(payer_client, payer, account):
    linked(payer, account)
    bill = make_bill(account, amounts=(4200,))
    page = payer_client.get(reverse("accounts:bill", args=[bill.pk]))
    assert page.status_code == 200
    assert bill.number in page.content.decode()
    assert reverse("accounts:bill_pdf", args=[bill.pk]) in page.content.decode()
    assert "no-store" in page["Cache-Control"]

    pdf = payer_client.get(reverse("accounts:bill_pdf", args=[bill.pk]))
    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
    assert b"".join(pdf.streaming_content).startswith(b"%PDF")


def test_someone_elses_bill_and_drafts_are_404(payer_client, payer, make_payer, biller):
    mine = CustomerAccountFactory(biller=biller)
    linked(payer, mine)
    theirs = CustomerAccountFactory(biller=biller)
    linked(make_payer("other@example.com"), theirs)
    their_bill = make_bill(theirs)
    my_draft = make_bill(mine, issue=False)
    for bill in (their_bill, my_draft):
        assert payer_client.get(reverse("accounts:bill", args=[bill.pk])).status_code == 404
        assert payer_client.get(reverse("accounts:bill_pdf", args=[bill.pk])).status_code == 404


def test_unlinked_account_bills_disappear(payer_client, payer, account):
    link = linked(payer, account)
    bill = make_bill(account)
    assert payer_client.get(reverse("accounts:bill", args=[bill.pk])).status_code == 200
    link.delete()
    assert payer_client.get(reverse("accounts:bill", args=[bill.pk])).status_code == 404


def test_pay_now_opens_the_payment_screen_for_that_account(payer_client, payer, account):
    linked(payer, account)
    make_bill(account, amounts=(4200,))
    response = payer_client.post(reverse("accounts:pay", args=[account.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("billing:pay_account")
    assert payer_client.session[lookup.GRANT_SESSION_KEY]["account_id"] == account.pk
    assert payer_client.get(reverse("accounts:dashboard")).status_code == 200  # still signed in after the key rotation
    assert payer_client.get(response["Location"]).status_code == 200


def test_pay_now_for_someone_elses_account_is_404(payer_client, biller):
    other = CustomerAccountFactory(biller=biller)
    assert payer_client.post(reverse("accounts:pay", args=[other.pk])).status_code == 404
    assert lookup.GRANT_SESSION_KEY not in payer_client.session
    assert payer_client.get(reverse("accounts:pay", args=[other.pk])).status_code == 405


# --- Receipts for signed-in payers (issue 10, item 7) ----------------------------------------------------------------


def _online_payment(account, *, status=Payment.Status.SUCCEEDED) -> Payment:
    """An online payment made in another browser (or by autopay): this session never saw it."""
    from django.utils import timezone

    from billing.payments.core import confirmation_number_new

    return Payment.objects.create(
        biller=account.biller, account=account, confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.PORTAL, method=Payment.Method.CARD, status=status, currency="USD", amount=5000,
        payer_email="payer@example.com", payment_method_summary="Visa •••• 4242", received_at=timezone.now(),
    )  # fmt: skip


def test_every_payment_on_the_dashboard_links_to_its_receipt_and_pdf(payer_client, payer, biller):
    account = CustomerAccountFactory(biller=biller)
    linked(payer, account)
    make_bill(account, amounts=(5000,))
    online = _online_payment(account)
    cash = payment_record_offline(account=account, amount=1000, method=Payment.Method.CASH)
    failed = _online_payment(account, status=Payment.Status.FAILED)
    for page in (reverse("accounts:dashboard"), reverse("accounts:account", args=[account.pk])):
        html = payer_client.get(page).content.decode()
        for payment in (online, cash, failed):
            assert reverse("billing:pay_receipt", args=[payment.confirmation_number]) in html
        for payment in (online, cash):
            assert reverse("billing:pay_receipt_pdf", args=[payment.confirmation_number]) in html
        assert reverse("billing:pay_receipt_pdf", args=[failed.confirmation_number]) not in html  # no PDF: not paid


def test_a_signed_in_payer_opens_the_receipt_and_pdf_of_their_own_accounts_payments(payer_client, payer, biller):
    account = CustomerAccountFactory(biller=biller)
    linked(payer, account)
    make_bill(account, amounts=(5000,))
    payment = _online_payment(account)
    page = payer_client.get(reverse("billing:pay_receipt", args=[payment.confirmation_number]))
    assert page.status_code == 200
    assert payment.confirmation_number in page.content.decode()
    pdf = payer_client.get(reverse("billing:pay_receipt_pdf", args=[payment.confirmation_number]))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    cash = payment_record_offline(account=account, amount=1000, method=Payment.Method.CASH)
    assert payer_client.get(reverse("billing:pay_receipt", args=[cash.confirmation_number])).status_code == 200


def test_a_signed_in_payer_never_opens_another_accounts_receipt(payer_client, payer, make_payer, biller):
    theirs = CustomerAccountFactory(biller=biller)
    linked(make_payer("other@example.com"), theirs)
    make_bill(theirs, amounts=(5000,))
    payment = _online_payment(theirs)
    for name in ("billing:pay_receipt", "billing:pay_receipt_pdf"):
        assert payer_client.get(reverse(name, args=[payment.confirmation_number])).status_code == 404
    assert payer_client.get(reverse("billing:pay_receipt", args=["NO-SUCH-NUMBER"])).status_code == 404


def test_dashboard_shows_a_bank_transfer_applied_from_a_statement(payer_client, payer, biller):
    from billing.payments.transfers import bank_entry_key, payment_record_bank_transfer

    account = CustomerAccountFactory(biller=biller)
    linked(payer, account)
    make_bill(account, amounts=(4000,))
    result = payment_record_bank_transfer(
        account=account, amount=4000, currency="USD",
        key=bank_entry_key(kind="transfer", biller_id=biller.pk, entry_key="2611030012345"),
    )  # fmt: skip
    html = payer_client.get(reverse("accounts:dashboard")).content.decode()
    assert result.payment.confirmation_number in html and "Bank transfer" in html
    assert "Nothing due" in html


def test_each_account_card_shows_its_three_newest_bills_newest_first(payer_client, payer, biller):
    """The newest bills per account are read with one LIMIT per account (PostgreSQL) or a window (SQLite): either way
    each card gets its own three newest, in order, and nothing older."""
    cards = {}
    for name in ("first", "second"):
        account = CustomerAccountFactory(biller=biller)
        linked(payer, account)
        cards[name] = [make_bill(account, amounts=(1000,), due_in_days=days, number=f"{name}-{days + 100}")
                       for days in (-50, -40, -30, -20, -10, 0)]  # fmt: skip
    html = payer_client.get(reverse("accounts:dashboard")).content.decode()
    for bills in cards.values():
        newest = [b.number for b in reversed(bills[-3:])]
        positions = [html.index(f'Bill <bdi dir="ltr">{number}</bdi>') for number in newest]
        assert positions == sorted(positions)  # newest first
        assert all(f">{b.number}<" not in html for b in bills[:3])  # the older three are not on the dashboard
