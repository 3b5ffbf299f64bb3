import datetime as dt
import re

import pytest

from billing.models import Bill, BillLine
from billing.payments import lookup
from billing.payments.offline import payment_record_offline
from billing.payments.online import QUOTE_BILLS
from tests.factories import CustomerAccountFactory, make_bill

SCREEN = "/pay/account/"


@pytest.fixture
def payer(client, account):
    """A client whose session was granted `account`, as a lookup or a pay link would."""
    session = client.session
    session[lookup.GRANT_SESSION_KEY] = {"account_id": account.pk, "expires_at": 2**40}
    session.save()
    return client


def html_of(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def shown_total(html: str) -> str | None:
    """The total the screen shows, or None while the quote is hidden (the amount or the tip has an error)."""
    section = re.search(r'<section class="card quote" id="pay-quote"[^>]*>', html).group(0)
    if " hidden" in section:
        return None
    return re.search(r'data-testid="quote-total">([^<]*)<', html).group(1)


def test_the_screen_shows_the_account_its_open_bills_and_the_balance(payer, account):
    account.holder_name = "Jane Smith"
    account.save()
    settled = make_bill(account, amounts=(1500,), due_in_days=-10)
    overdue = make_bill(account, amounts=(2000,), due_in_days=-3)
    current = make_bill(account, amounts=(4321,), due_in_days=10)
    payment_record_offline(account=account, amount=1500, method="cash")  # settles the oldest bill
    settled.refresh_from_db()
    assert settled.status == Bill.Status.PAID
    html = html_of(payer.get(SCREEN))
    # Isolated from the page's direction, so a Latin name keeps its order on an Arabic or Persian page.
    assert "<bdi>J*** S****</bdi>" in html
    assert "Jane Smith" not in html
    assert account.account_number in html
    assert account.biller.name in html
    assert overdue.number in html and current.number in html
    assert settled.number not in html
    assert 'data-testid="balance">$63.21<' in html


def test_an_overdue_bill_is_marked(payer, account):
    make_bill(account, amounts=(2000,), due_in_days=-3, number="LATE-1")
    make_bill(account, amounts=(2000,), due_in_days=5, number="SOON-1")
    html = html_of(payer.get(SCREEN))
    late, soon = html.index("LATE-1"), html.index("SOON-1")
    assert late < soon, "oldest due first"
    assert html.count("badge-overdue") == 1
    assert late < html.index("badge-overdue") < soon


def test_the_fee_is_disclosed_before_paying(payer, account):
    biller = account.biller
    biller.convenience_fee_fixed = 150
    biller.convenience_fee_basis_points = 250
    biller.save()
    make_bill(account, amounts=(10000,))
    html = html_of(payer.get(SCREEN))
    assert "A convenience fee of $1.50 plus 2.5% of the amount is added" in html
    assert "For the full balance that is $4.00." in html


def test_no_fee_is_said_plainly(payer, account):
    make_bill(account, amounts=(10000,))
    assert "There is no fee for paying online." in html_of(payer.get(SCREEN))


def test_form_has_labels_card_container_and_enrolment_choices(payer, account):
    make_bill(account)
    html = html_of(payer.get(SCREEN))
    assert '<div id="card-element"' in html
    for name, label in [
        ("paperless", "Send my future bills by e-mail (paperless)"),
        ("autopay", "Save this card for autopay"),
    ]:
        assert re.search(rf'<input type="checkbox" name="{name}" id="id_{name}"', html)
        assert f'<label for="id_{name}">{label}</label>' in html
    for field_id in ["id_amount_choice_0", "id_amount_choice_1", "id_other_amount", "id_receipt_email"]:
        assert f'for="{field_id}"' in html
    assert re.search(r'<input type="radio" name="amount_choice" value="full"[^>]*checked', html)


def test_tips_are_offered_only_when_the_biller_enables_them(payer, account):
    make_bill(account)
    assert 'name="tip_percent"' not in html_of(payer.get(SCREEN))
    account.biller.tips_enabled = True
    account.biller.save()
    html = html_of(payer.get(SCREEN))
    for preset in (15, 20, 25):
        assert f'value="{preset}"' in html


def test_continue_shows_the_server_quote_for_the_full_balance(payer, account):
    account.biller.convenience_fee_fixed = 100
    account.biller.save()
    make_bill(account, amounts=(4000,))
    make_bill(account, amounts=(1000,))
    html = html_of(
        payer.post(SCREEN, {"amount_choice": "full", "other_amount": "1.00", "receipt_email": "me@example.com"})
    )
    assert 'data-testid="quote-total">$51.00<' in html
    assert "$50.00" in html  # towards the bills


def test_continue_with_another_amount_and_a_tip(payer, account):
    biller = account.biller
    biller.tips_enabled = True
    biller.save()
    make_bill(account, amounts=(10000,))
    html = html_of(
        payer.post(
            SCREEN,
            {"amount_choice": "other", "other_amount": "40", "tip_percent": "20", "receipt_email": "me@example.com"},
        )
    )
    assert 'data-testid="quote-total">$48.00<' in html
    assert "Tip" in html


def test_an_amount_over_the_balance_is_an_error_on_the_amount_field(payer, account):
    make_bill(account, amounts=(5000,))
    html = html_of(
        payer.post(SCREEN, {"amount_choice": "other", "other_amount": "60.00", "receipt_email": "me@example.com"})
    )
    assert shown_total(html) is None
    assert re.search(r'<p class="field-error" id="id_other_amount-error">[^<]*more than the \$50.00 owed', html)
    field = re.search(r'<input[^>]*name="other_amount"[^>]*>', html).group(0)
    assert 'aria-describedby="id_other_amount-error other-amount-limits"' in field
    assert 'aria-invalid="true"' in field
    assert 'value="60.00"' in field


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        ({"amount_choice": "other", "other_amount": "", "receipt_email": "me@example.com"}, "other_amount", "Enter"),
        ({"amount_choice": "other", "other_amount": "abc", "receipt_email": "me@example.com"}, "other_amount", "amount"),
        ({"amount_choice": "other", "other_amount": "-10", "receipt_email": "me@example.com"}, "other_amount", "sign"),
        ({"amount_choice": "other", "other_amount": "1e3", "receipt_email": "me@example.com"}, "other_amount", "amount"),
        ({"amount_choice": "other", "other_amount": "1/2", "receipt_email": "me@example.com"}, "other_amount", "amount"),
        ({"amount_choice": "other", "other_amount": "0.50", "receipt_email": "a@b.co"}, "other_amount", "smallest"),
        ({"amount_choice": "full", "receipt_email": "not-an-address"}, "receipt_email", "e-mail"),
        ({"amount_choice": "full", "receipt_email": ""}, "receipt_email", "send your receipt"),
    ],
)
def test_errors_are_tied_to_their_fields(payer, account, data, field, text):
    make_bill(account, amounts=(5000,))
    html = html_of(payer.post(SCREEN, data))
    error = re.search(rf'<p class="field-error" id="id_{field}-error">([^<]*)</p>', html)
    assert error and text.lower() in error.group(1).lower()
    assert re.search(rf'<input[^>]*aria-describedby="id_{field}-error[^"]*"[^>]*name="{field}"|'
                     rf'<input[^>]*name="{field}"[^>]*aria-describedby="id_{field}-error', html)  # fmt: skip
    # An error on the amount hides the total; one on the e-mail does not (the amount was fine).
    assert shown_total(html) == (None if field == "other_amount" else "$50.00")


def test_an_account_with_nothing_to_pay_says_so(payer, account):
    bill = make_bill(account, amounts=(5000,))
    payment_record_offline(account=account, amount=bill.total, method="cash")
    html = html_of(payer.get(SCREEN))
    assert "There is nothing to pay on this account right now." in html
    assert 'id="payment-form"' not in html


def test_a_grant_for_one_account_never_shows_another(payer, account):
    make_bill(account, amounts=(1234,), number="MINE-1")
    other = CustomerAccountFactory(biller=account.biller)
    make_bill(other, amounts=(5678,), number="THEIRS-1")
    html = html_of(payer.get(SCREEN + f"?account={other.pk}"))
    assert "MINE-1" in html and "THEIRS-1" not in html
    html = html_of(payer.post(SCREEN, {"amount_choice": "full", "receipt_email": "a@b.co", "account": other.pk}))
    assert "$12.34" in html and "$56.78" not in html


def _bulk_open_bills(account, count):
    """`count` open bills in two statements, so the test measures the screen and not the setup."""
    today = dt.date.today()
    bills = Bill.objects.bulk_create(
        Bill(
            biller=account.biller,
            account=account,
            number=f"BULK-{account.pk}-{i:04d}",
            status=Bill.Status.OPEN,
            period_start=today - dt.timedelta(days=30),
            period_end=today - dt.timedelta(days=1),
            issue_date=today,
            due_date=today + dt.timedelta(days=i % 40 - 20),
            currency=account.biller.currency,
            subtotal=1000 + i,
            total=1000 + i,
        )
        for i in range(count)
    )
    BillLine.objects.bulk_create(BillLine(bill=b, description="Charge", amount=b.total) for b in bills)


@pytest.mark.parametrize("count", [1, 200])
def test_the_screen_runs_a_fixed_number_of_queries(payer, account, count, django_assert_max_num_queries):
    _bulk_open_bills(account, count)
    # The same budget for 1 and 200 bills: the session (until the shared cache has it), the account with whether
    # paperless and autopay are on (so they are not offered again), and the oldest ten payable bills with the balance
    # and the count of all of them. The biller comes from the shared cache. It was 5 before.
    with django_assert_max_num_queries(3):
        html = html_of(payer.get(SCREEN))
    assert html.count('class="bill-row"') == min(count, QUOTE_BILLS)
    with django_assert_max_num_queries(3):  # the quote re-reads the bills (the session is cached by now)
        html_of(payer.post(SCREEN, {"amount_choice": "full", "receipt_email": "a@b.co"}))


def test_many_open_bills_list_the_oldest_and_say_how_many_more(payer, account):
    _bulk_open_bills(account, 200)
    bills = list(Bill.objects.filter(account=account).order_by("due_date", "pk"))
    html = html_of(payer.get(SCREEN))
    rows = re.findall(r'<span class="bill-number">Bill <bdi dir="ltr">([^<]+)</bdi></span>', html)
    assert rows == [b.number for b in bills[:QUOTE_BILLS]]  # the oldest first
    assert "and 190 more open bills" in html and 'href="?bills=all"' in html
    owed = sum(b.total for b in bills)
    assert f"${owed // 100:,}.{owed % 100:02d}" in html  # the balance is every bill's, not the ten shown

    everything = html_of(payer.get(SCREEN, {"bills": "all"}))
    assert everything.count('class="bill-row"') == 200 and "more open bill" not in everything


def test_all_errors_are_shown_at_once(payer, account):
    make_bill(account, amounts=(5000,))
    html = html_of(payer.post(SCREEN, {"amount_choice": "other", "other_amount": "600", "receipt_email": ""}))
    assert 'id="id_other_amount-error"' in html
    assert 'id="id_receipt_email-error"' in html
    assert shown_total(html) is None


# --- One screen: the total is shown from the start and follows the payer's choices (issue 10, item 1) ------------


def test_the_first_screen_shows_the_total_and_one_pay_button(payer, account):
    account.biller.convenience_fee_fixed = 100
    account.biller.save()
    make_bill(account, amounts=(4000,))
    html = html_of(payer.get(SCREEN))
    assert shown_total(html) == "$41.00"
    buttons = re.findall(r"<button[^>]*>[^<]*</button>", html.split('id="payment-form"')[1].split("</form>")[0])
    assert buttons == ['<button class="button button-primary" type="submit" id="pay-button">Pay $41.00</button>']
    assert "Continue" not in html


def test_without_javascript_the_submit_shows_the_new_total_and_keeps_the_choices(payer, account):
    biller = account.biller
    biller.tips_enabled = True
    biller.save()
    make_bill(account, amounts=(10000,))
    html = html_of(
        payer.post(SCREEN, {"amount_choice": "other", "other_amount": "40", "tip_percent": "20", "receipt_email": ""})
    )
    assert shown_total(html) == "$48.00"
    assert ">Pay $48.00</button>" in html
    assert re.search(r'<input type="radio" name="tip_percent" value="20"[^>]*checked', html)
    assert 'id="id_receipt_email-error"' in html  # the e-mail is still asked for


QUOTE = "/pay/account/quote/"


def test_the_quote_endpoint_answers_the_servers_figures(payer, account):
    biller = account.biller
    biller.tips_enabled = True
    biller.convenience_fee_basis_points = 250
    biller.save()
    make_bill(account, amounts=(10000,))
    answer = payer.post(QUOTE, {"amount_choice": "other", "other_amount": "40", "tip_percent": "15", "total": "1"})
    assert answer.status_code == 200
    assert answer.json() == {
        "total": 4000 + 100 + 600,
        "totalDisplay": "$47.00",
        "rows": [["Payment towards your bills", "$40.00"], ["Convenience fee", "$1.00"], ["Tip", "$6.00"]],
        "payLabel": "Pay $47.00",
    }
    from billing.models import Payment

    assert not Payment.objects.exists()  # a quote starts nothing


def test_the_quote_endpoint_reports_the_amounts_error_and_ignores_the_e_mail(payer, account):
    make_bill(account, amounts=(5000,))
    answer = payer.post(QUOTE, {"amount_choice": "other", "other_amount": "60"})
    assert answer.status_code == 400
    assert list(answer.json()["errors"]) == ["other_amount"]
    assert "more than the $50.00 owed" in answer.json()["errors"]["other_amount"]
    assert payer.post(QUOTE, {"amount_choice": "full"}).json()["totalDisplay"] == "$50.00"


def test_the_quote_endpoint_needs_the_sessions_grant(client, account):
    make_bill(account, amounts=(5000,))
    answer = client.post(QUOTE, {"amount_choice": "full"})
    assert answer.status_code == 403 and answer.json()["redirect"] == "/pay/"


# --- The receipt address from the account's e-mail on a pay link: masked, editable (issue 10, item 5) ------------


def test_a_guest_sees_the_accounts_address_masked_never_in_full(payer, account):
    account.email = "jane.doe@example.com"
    account.save()
    make_bill(account, amounts=(5000,))
    html = html_of(payer.get(SCREEN))
    assert "jane.doe@example.com" not in html and "jane.doe" not in html
    field = re.search(r'<input[^>]*name="receipt_email"[^>]*>', html).group(0)
    assert 'value="j*******@e******.com"' in field
    assert "partly hidden" in html


def test_a_masked_address_left_as_shown_sends_the_receipt_to_the_account(payer, account):
    from billing.models import Payment

    account.email = "jane.doe@example.com"
    account.save()
    make_bill(account, amounts=(5000,))
    form_data = {"amount_choice": "full", "receipt_email": "j*******@e******.com"}
    html = html_of(payer.post(SCREEN, form_data))
    assert 'id="id_receipt_email-error"' not in html
    assert "jane.doe@example.com" not in html  # still masked after a no-JavaScript submit
    from billing.views import _payment_form  # the form the start view parses, with the same pre-fill

    from billing.autopay.selectors import autopay_on
    from billing.enrolment.paperless import paperless_on
    from billing.models import CustomerAccount

    class Request:
        user = type("Anonymous", (), {"is_authenticated": False})()

    # The account as the pay views read it (`_granted_account`): with whether paperless and autopay are on.
    account = CustomerAccount.objects.annotate(paperless_is_on=paperless_on(), autopay_is_on=autopay_on()).get(
        pk=account.pk
    )
    form = _payment_form(Request(), account, form_data)
    assert form.is_valid() and form.cleaned_data["receipt_email"] == "jane.doe@example.com"
    typed = _payment_form(Request(), account, form_data | {"receipt_email": "me@example.org"})
    assert typed.is_valid() and typed.cleaned_data["receipt_email"] == "me@example.org"
    assert not Payment.objects.exists()


def test_a_masked_looking_address_that_differs_is_an_error(payer, account):
    account.email = "jane.doe@example.com"
    account.save()
    make_bill(account, amounts=(5000,))
    html = html_of(payer.post(SCREEN, {"amount_choice": "full", "receipt_email": "x***@e******.com"}))
    assert 'id="id_receipt_email-error"' in html


def test_the_pay_screen_offers_a_plan_as_soon_as_staff_turn_plans_on(payer, account, biller):
    from billing.models import PlanRules

    make_bill(account, amounts=(50_000,), due_in_days=10)
    assert "Pay over time" not in payer.get(SCREEN).content.decode()  # the biller (rules: none) is cached now
    PlanRules.objects.create(biller=biller, enabled=True, self_service=True)
    assert "Pay over time" in payer.get(SCREEN).content.decode()
