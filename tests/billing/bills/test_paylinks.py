import datetime as dt

import pytest
from django.core import signing
from django.urls import reverse

from billing.bills import paylinks, services
from billing.payments.lookup import GRANT_SESSION_KEY
from tests.factories import CustomerAccountFactory, make_bill

SITE = "https://pay.riverside.example"


@pytest.fixture(autouse=True)
def site_url(settings):
    settings.SITE_URL = SITE


def _path(url: str) -> str:
    assert url.startswith(SITE + "/")
    return url[len(SITE) :]


def test_pay_link_round_trip(account):
    bill = make_bill(account)
    url = paylinks.bill_pay_url(bill)
    assert url.startswith(SITE + "/pay/b/")
    assert url == paylinks.bill_pay_url(bill), "the same bill must always get the same link (it is printed in PDFs)"
    token = url.rstrip("/").rsplit("/", 1)[1]
    assert paylinks.bill_from_pay_token(token) == bill
    # Other bills get other links.
    assert paylinks.bill_pay_url(make_bill(account)) != url


def _flip_last(token: str) -> str:
    return token[:-1] + ("A" if token[-1] != "A" else "B")


@pytest.mark.parametrize(
    "forge",
    [
        lambda bill: _flip_last(paylinks.pay_token(bill)),
        lambda bill: signing.Signer(salt="another.salt").sign_object([bill.pk, bill.biller_id]),
        lambda bill: signing.Signer(salt=paylinks.SALT).sign_object([bill.pk, bill.biller_id + 1]),
        lambda bill: signing.Signer(salt=paylinks.SALT).sign_object({"bill": bill.pk}),
        lambda bill: "not-a-token",
        lambda bill: "",
    ],
    ids=["bad-signature", "wrong-salt", "wrong-biller", "wrong-shape", "garbage", "empty"],
)
def test_a_tampered_token_is_refused(account, forge):
    bill = make_bill(account)
    with pytest.raises(paylinks.PayLinkTampered):
        paylinks.bill_from_pay_token(forge(bill))


def test_a_token_for_another_bill_id_signed_by_someone_else_is_refused(account):
    bill = make_bill(account)
    other = make_bill(CustomerAccountFactory(biller=account.biller))
    token = paylinks.pay_token(bill)
    payload, signature = token.rsplit(":", 1)
    forged_payload = paylinks.pay_token(other).rsplit(":", 1)[0]
    with pytest.raises(paylinks.PayLinkTampered):
        paylinks.bill_from_pay_token(f"{forged_payload}:{signature}")


def test_the_link_expires_the_configured_days_after_the_due_date(account):
    biller = account.biller
    biller.pay_link_valid_days = 30
    biller.save()
    today = dt.date(2026, 3, 1)
    bill = make_bill(account, today=today, due_in_days=14)  # due 15 March
    token = paylinks.pay_token(bill)
    last_day = dt.date(2026, 3, 15) + dt.timedelta(days=30)
    assert paylinks.bill_from_pay_token(token, today=last_day) == bill
    with pytest.raises(paylinks.PayLinkExpired) as caught:
        paylinks.bill_from_pay_token(token, today=last_day + dt.timedelta(days=1))
    assert caught.value.expired_on == last_day


def test_moving_the_due_date_moves_the_expiry(account):
    today = dt.date(2026, 3, 1)
    bill = make_bill(account, today=today, due_in_days=0)
    token = paylinks.pay_token(bill)
    late = today + dt.timedelta(days=account.biller.pay_link_valid_days + 1)
    with pytest.raises(paylinks.PayLinkExpired):
        paylinks.bill_from_pay_token(token, today=late)
    bill.due_date = today + dt.timedelta(days=10)
    bill.save(update_fields=["due_date"])
    assert paylinks.bill_from_pay_token(token, today=late) == bill


def test_a_void_bill_has_its_own_error(account):
    bill = make_bill(account)
    services.bill_void(bill=bill, reason="Rebilled")
    with pytest.raises(paylinks.PayLinkBillVoid):
        paylinks.bill_from_pay_token(paylinks.pay_token(bill))


def test_opening_a_link_grants_only_that_account(client, account):
    bill = make_bill(account, amounts=(4321,))
    other_account = CustomerAccountFactory(biller=account.biller)
    other_bill = make_bill(other_account, amounts=(9876,))

    response = client.get(_path(paylinks.bill_pay_url(bill)))
    assert response.status_code == 302
    assert response["Location"] == reverse("billing:pay_account")
    assert client.session[GRANT_SESSION_KEY]["account_id"] == account.pk

    html = client.get(reverse("billing:pay_account")).content.decode()
    assert bill.number in html
    assert "$43.21" in html
    assert other_bill.number not in html
    assert other_account.account_number not in html
    assert "$98.76" not in html

    # Opening B's link afterwards switches the grant to B alone: A is no longer reachable from this session.
    client.get(_path(paylinks.bill_pay_url(other_bill)))
    html = client.get(reverse("billing:pay_account")).content.decode()
    assert other_bill.number in html and bill.number not in html


def test_opening_a_link_rotates_the_session_key(client, account):
    bill = make_bill(account)
    client.get(reverse("billing:pay"))
    session = client.session
    session["planted"] = True
    session.save()
    before = session.session_key
    client.get(_path(paylinks.bill_pay_url(bill)))
    assert client.session.session_key != before


def test_expired_link_page_explains_and_offers_the_lookup(client, account):
    today = dt.date.today()
    bill = make_bill(account, today=today - dt.timedelta(days=400), due_in_days=0)
    response = client.get(_path(paylinks.bill_pay_url(bill)))
    html = response.content.decode()
    assert response.status_code == 410
    assert "This payment link has expired" in html
    assert 'name="account_number"' in html
    assert GRANT_SESSION_KEY not in client.session


def test_tampered_link_page_is_a_404_with_the_lookup(client, account):
    bill = make_bill(account)
    url = _path(paylinks.bill_pay_url(bill))
    response = client.get(url.replace("/pay/b/", "/pay/b/x"))
    html = response.content.decode()
    assert response.status_code == 404
    assert "This payment link doesn&#x27;t work" in html
    assert 'name="account_number"' in html
    assert GRANT_SESSION_KEY not in client.session
    assert client.get(reverse("billing:pay_account")).status_code == 302


def test_void_bill_link_page_is_gone(client, account):
    bill = make_bill(account)
    url = _path(paylinks.bill_pay_url(bill))
    services.bill_void(bill=bill, reason="Rebilled")
    response = client.get(url)
    assert response.status_code == 410
    assert "This bill has been cancelled" in response.content.decode()
