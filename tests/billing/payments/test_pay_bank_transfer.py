"""Paying by bank transfer, as the payer sees it: the box on the pay screen (first when the balance is above the card
limit), the reference on the e-bill's how-to-pay box, and the reference and credit in seed_demo's JSON."""

import json

import pytest
from django.core.management import call_command

from billing.bills.documents import bill_document_get, bill_document_html
from tests.billing.payments.test_pay_page import SCREEN, html_of, payer  # noqa: F401
from tests.factories import make_bill

pytestmark = pytest.mark.django_db


@pytest.fixture
def bank_biller(biller):
    biller.bank_iban = "DE89370400440532013000"
    biller.bank_bic = "COBADEFFXXX"
    biller.bank_name = "Commerzbank"
    biller.save()
    return biller


def test_the_pay_screen_shows_the_bank_details_and_the_reference(payer, account, bank_biller):  # noqa: F811
    make_bill(account, amounts=(5000,))
    html = html_of(payer.get(SCREEN))
    assert "Pay by bank transfer" in html
    assert account.bank_reference_display in html
    assert "DE89 3704 0044 0532 0130 00" in html and "COBADEFFXXX" in html
    assert html.index('data-testid="bank-transfer"') > html.index('id="payment-form"')  # after the card form


def test_above_the_card_limit_the_bank_transfer_comes_first(payer, account, bank_biller):  # noqa: F811
    bank_biller.maximum_payment = 10000
    bank_biller.save()
    make_bill(account, amounts=(25000,))
    html = html_of(payer.get(SCREEN))
    box = html.index('data-testid="bank-transfer"')
    assert all(box < html.index(mark) for mark in ('id="payment-form"', 'class="card nothing-due"') if mark in html)
    assert "more than the $100.00 we can take by card" in html


def test_no_bank_details_no_box(payer, account):  # noqa: F811
    make_bill(account, amounts=(5000,))
    assert "Pay by bank transfer" not in html_of(payer.get(SCREEN))


def test_the_e_bill_prints_the_reference_in_how_to_pay(account, bank_biller):
    bank_biller.remit_address = "Riverside Water\nPO Box 1200"  # the stub is printed for billers taking mail
    bank_biller.save()
    bill = make_bill(account, amounts=(5000,))
    html = bill_document_html(document=bill_document_get(bill=bill))
    assert "By bank transfer" in html
    assert html.count(account.bank_reference_display) == 2  # the how-to-pay box and the payment stub
    assert "Transfer reference" in html.split('class="stub"', 1)[1]


def test_seed_demo_json_gives_each_account_its_reference_and_credit(capsys):
    from stdnum import iso11649

    call_command("seed_demo", "--json")
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(iso11649.is_valid(row["bank_reference"]) for row in rows)
    assert len({row["bank_reference"] for row in rows}) == len(rows)
    assert all(row["credit_minor"] == 0 and row["open_balance_minor"] >= 0 for row in rows)


def test_credit_held_is_shown_on_the_pay_screen(payer, account):  # noqa: F811
    from billing.payments.transfers import bank_entry_key, payment_record_bank_transfer

    make_bill(account, amounts=(5000,))
    assert 'data-testid="credit"' not in html_of(payer.get(SCREEN))
    payment_record_bank_transfer(
        account=account, amount=7000, currency="USD",
        key=bank_entry_key(kind="transfer", biller_id=account.biller_id, entry_key="E1"),
    )  # fmt: skip
    make_bill(account, amounts=(9000,))  # owes again; the credit waits for the after-commit reaction
    assert 'data-testid="credit"><bdi dir="ltr">$20.00<' in html_of(payer.get(SCREEN))
