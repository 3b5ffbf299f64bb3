import datetime as dt
import re
import time

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.models import Biller
from billing.payments import lookup
from tests.factories import CustomerAccountFactory, make_bill

PAY = "/pay/"


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def postal_account(biller):
    return CustomerAccountFactory(biller=biller, account_number="4100200", postal_code="92 501-a")


@pytest.fixture
def amount_biller(biller):
    biller.lookup_factor = Biller.LookupFactor.LAST_BILL_AMOUNT
    biller.save()
    return biller


def post(client, data, ip="203.0.113.7"):
    return client.post(PAY, data, REMOTE_ADDR=ip)


def granted(client) -> int | None:
    return client.session.get(lookup.GRANT_SESSION_KEY, {}).get("account_id")


def without_csrf(html: str) -> str:
    """The page without what is random in every response anyway: the CSRF token and the CSP nonce."""
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    return re.sub(r'nonce="[^"]*"', "", html)


# --- Finding an account ----------------------------------------------------------------------------------------------


def test_lookup_by_postal_code_opens_the_payment_screen(client, postal_account):
    make_bill(postal_account, amounts=(4321,))
    client.get(PAY)
    before = client.session.session_key
    response = post(client, {"account_number": " 4100200 ", "postal_code": "92501a"})
    assert response.status_code == 302
    assert response["Location"] == reverse("billing:pay_account")
    assert granted(client) == postal_account.pk
    assert client.session.session_key != before, "the session key must rotate when access is granted"
    html = client.get(reverse("billing:pay_account")).content.decode()
    assert "4100200" in html and "$43.21" in html


def test_account_number_typed_with_spaces_is_found(client, postal_account):
    response = post(client, {"account_number": "4100 200", "postal_code": "92501-A"})
    assert response.status_code == 302
    assert granted(client) == postal_account.pk


def test_lookup_by_amount_of_the_last_bill(client, amount_biller):
    account = CustomerAccountFactory(biller=amount_biller, account_number="777")
    older = make_bill(account, amounts=(1111,), today=dt.date.today() - dt.timedelta(days=40))
    older.issue_date = dt.date.today() - dt.timedelta(days=40)
    older.save(update_fields=["issue_date"])
    make_bill(account, amounts=(4321,))
    make_bill(account, amounts=(9999,), issue=False)  # a draft was never sent, so it is not "the last bill"

    assert post(client, {"account_number": "777", "last_bill_amount": "11.11"}).status_code == 200
    assert post(client, {"account_number": "777", "last_bill_amount": "99.99"}).status_code == 200
    assert granted(client) is None
    response = post(client, {"account_number": "777", "last_bill_amount": "$43.21"})
    assert response.status_code == 302
    assert granted(client) == account.pk


@pytest.mark.parametrize(
    ("language", "typed"), [("es", "43,21"), ("ar", "٤٣٫٢١"), ("fa", "۴۳٫۲۱"), ("fa", "43.21"), ("en", "43.21")]
)
def test_the_last_bill_amount_is_read_the_way_the_payers_language_writes_it(client, amount_biller, language, typed):
    account = CustomerAccountFactory(biller=amount_biller, account_number="778")
    make_bill(account, amounts=(4321,))
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    assert post(client, {"account_number": "778", "last_bill_amount": typed}).status_code == 302


def test_a_decimal_comma_is_not_guessed_in_english(client, amount_biller):
    account = CustomerAccountFactory(biller=amount_biller, account_number="778")
    make_bill(account, amounts=(4321,))
    response = post(client, {"account_number": "778", "last_bill_amount": "43,21"})
    assert response.status_code == 200
    assert "is not an amount" in response.content.decode()
    assert granted(client) is None


def test_an_account_of_another_biller_is_not_found(client, postal_account):
    other = Biller.objects.create(name="Other", slug="other")
    stranger = CustomerAccountFactory(biller=other, account_number="555", postal_code="11111")
    response = post(client, {"account_number": "555", "postal_code": "11111"})
    assert response.status_code == 200
    assert granted(client) is None
    assert stranger.holder_name not in response.content.decode()


def test_empty_fields_get_errors_tied_to_them(client, postal_account):
    html = post(client, {"account_number": "", "postal_code": ""}).content.decode()
    assert 'id="id_account_number-error"' in html
    assert re.search(r'<input[^>]*aria-describedby="id_account_number-error[^"]*"[^>]*name="account_number"', html) or (
        re.search(r'name="account_number"[^>]*aria-describedby="id_account_number-error', html)
    )
    assert 'aria-invalid="true"' in html


# --- Not revealing whether an account exists -------------------------------------------------------------------------


def _normalised_sql(queries) -> list[str]:
    return [re.sub(r"'[^']*'|\b\d+\b", "?", q["sql"]) for q in queries]


@pytest.mark.parametrize("factor", ["postal_code", "last_bill_amount"])
def test_a_miss_and_a_wrong_factor_look_and_work_the_same(biller, factor):
    from django.test import Client

    biller.lookup_factor = factor
    biller.save()
    real = CustomerAccountFactory(biller=biller, account_number="4100200", postal_code="92501")
    make_bill(real, amounts=(4321,))
    wrong = {"postal_code": "10001"} if factor == "postal_code" else {"last_bill_amount": "12.34"}

    responses, sql = [], []
    for number in ("4100200", "9999999"):  # exists with a wrong factor; does not exist
        c = Client()
        c.get(PAY)
        with CaptureQueriesContext(connection) as queries:
            responses.append(c.post(PAY, {"account_number": number, **wrong}, REMOTE_ADDR="198.51.100.1"))
        sql.append(_normalised_sql(queries.captured_queries))
        assert lookup.GRANT_SESSION_KEY not in c.session
    hit, miss = responses
    assert hit.status_code == miss.status_code == 200
    assert without_csrf(hit.content.decode()) == without_csrf(miss.content.decode())
    assert "We couldn&#x27;t find an account with those details" in hit.content.decode()
    assert sql[0] == sql[1], "a miss must run the same queries as a wrong factor"


def test_the_factor_is_compared_in_constant_time_even_on_a_miss(client, biller, monkeypatch):
    calls = []
    real_compare = lookup.hmac.compare_digest
    monkeypatch.setattr(lookup.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real_compare(a, b))
    post(client, {"account_number": "no-such", "postal_code": "92501"})
    assert len(calls) == 1


# --- Rate limits -----------------------------------------------------------------------------------------------------


def test_too_many_attempts_from_one_ip_lock_it_out(client, postal_account):
    for n in range(lookup.IP_FAILURE_LIMIT):
        assert post(client, {"account_number": f"nope{n}", "postal_code": "00000"}, ip="192.0.2.9").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = post(client, {"account_number": "4100200", "postal_code": "92501A"}, ip="192.0.2.9")
    html = response.content.decode()
    assert response.status_code == 429
    assert "Too many attempts" in html and "wait 15 minutes" in html
    assert granted(client) is None, "locked out: even the right details must not be looked up"
    assert not any("billing_customeraccount" in q["sql"] for q in queries.captured_queries)
    # Another address is not affected.
    assert post(client, {"account_number": "4100200", "postal_code": "92501A"}, ip="192.0.2.10").status_code == 302


def test_successes_do_not_count_towards_the_ip_limit(client, postal_account):
    """Issue 10, item 4: a payer who mistyped earlier still gets in with the right details, and a kiosk or a
    carrier's NAT full of payers finding their own accounts is never locked out by those successes."""
    right = {"account_number": "4100200", "postal_code": "92501A"}
    for n in range(lookup.IP_FAILURE_LIMIT - 1):
        post(client, {"account_number": f"nope{n}", "postal_code": "00000"}, ip="192.0.2.20")
    for _ in range(lookup.IP_FAILURE_LIMIT * 3):
        assert post(client, right, ip="192.0.2.20").status_code == 302
    # The one miss left is still allowed; the next is locked: misses alone count.
    assert post(client, {"account_number": "nope-last", "postal_code": "00000"}, ip="192.0.2.20").status_code == 200
    assert post(client, right, ip="192.0.2.20").status_code == 429


def test_a_locked_attempt_does_not_extend_the_count(client, postal_account):
    for n in range(lookup.IP_FAILURE_LIMIT):
        post(client, {"account_number": f"nope{n}", "postal_code": "00000"}, ip="192.0.2.21")
    for _ in range(3):
        assert post(client, {"account_number": "4100200", "postal_code": "92501A"}, ip="192.0.2.21").status_code == 429
    assert cache.get(lookup.rate_limit_key("lookup", "ip", "192.0.2.21")) == lookup.IP_FAILURE_LIMIT


@pytest.mark.parametrize("typed", ["92501-1234", "92501 1234", "925011234", " 92501-1234 "])
def test_zip_plus_4_is_accepted_for_a_five_digit_postal_code(client, biller, typed):
    CustomerAccountFactory(biller=biller, account_number="4100300", postal_code="92501")
    assert post(client, {"account_number": "4100300", "postal_code": typed}).status_code == 302


def test_zip_plus_4_must_still_match_the_five_digits(client, biller):
    CustomerAccountFactory(biller=biller, account_number="4100300", postal_code="92501")
    assert post(client, {"account_number": "4100300", "postal_code": "92502-1234"}).status_code == 200
    assert granted(client) is None


def test_a_zip_plus_4_on_file_needs_all_nine_digits(client, biller):
    CustomerAccountFactory(biller=biller, account_number="4100301", postal_code="92501-1234")
    assert post(client, {"account_number": "4100301", "postal_code": "92501"}).status_code == 200
    assert post(client, {"account_number": "4100301", "postal_code": "92501-1234"}).status_code == 302


@pytest.mark.parametrize("number", ["4100200", "0000001"], ids=["existing-account", "no-such-account"])
def test_failures_on_one_account_number_lock_it_from_every_address(client, postal_account, number):
    for n in range(lookup.ACCOUNT_FAILURE_LIMIT):
        assert post(client, {"account_number": number, "postal_code": "00000"}, ip=f"198.51.100.{n}").status_code == 200
    response = post(client, {"account_number": number, "postal_code": "92501A"}, ip="198.51.100.200")
    assert response.status_code == 429
    assert "Too many attempts" in response.content.decode()
    assert granted(client) is None
    # Other account numbers are not affected.
    CustomerAccountFactory(biller=postal_account.biller, account_number="4100201", postal_code="92501A")
    assert post(client, {"account_number": "4100201", "postal_code": "92501A"}, ip="198.51.100.201").status_code == 302


def test_the_locked_page_is_the_same_whether_or_not_the_account_exists(postal_account):
    from django.test import Client

    pages = []
    for number in ("4100200", "0000001"):
        c = Client()
        c.get(PAY)
        for n in range(lookup.ACCOUNT_FAILURE_LIMIT):
            c.post(PAY, {"account_number": number, "postal_code": "00000"}, REMOTE_ADDR=f"10.{len(pages)}.0.{n}")
        pages.append(c.post(PAY, {"account_number": number, "postal_code": "1"}, REMOTE_ADDR=f"10.{len(pages)}.1.1"))
    assert pages[0].status_code == pages[1].status_code == 429
    assert without_csrf(pages[0].content.decode()) == without_csrf(pages[1].content.decode())


def test_a_successful_lookup_does_not_count_as_a_failure_for_the_account(client, postal_account):
    right = {"account_number": "4100200", "postal_code": "92501A"}
    for n in range(lookup.ACCOUNT_FAILURE_LIMIT + 3):
        assert post(client, right, ip=f"203.0.113.{n}").status_code == 302


def test_the_lockout_lifts_after_the_window_and_says_how_long_to_wait(client, postal_account, monkeypatch):
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])  # the cache's expiry reads the same clock
    for n in range(lookup.IP_FAILURE_LIMIT):
        post(client, {"account_number": f"nope{n}", "postal_code": "0"}, ip="192.0.2.30")
    clock[0] += 10 * 60
    response = post(client, {"account_number": "4100200", "postal_code": "92501A"}, ip="192.0.2.30")
    assert response.status_code == 429
    assert "wait 5 minutes" in response.content.decode()
    clock[0] += 5 * 60 + 1
    assert post(client, {"account_number": "4100200", "postal_code": "92501A"}, ip="192.0.2.30").status_code == 302


# --- The grant --------------------------------------------------------------------------------------------------------


def test_the_payment_screen_needs_a_grant(client, postal_account):
    response = client.get(reverse("billing:pay_account"), follow=True)
    assert response.redirect_chain == [(PAY, 302)]
    assert "Please find your account first" in response.content.decode()


def test_the_grant_times_out(client, postal_account, monkeypatch):
    make_bill(postal_account)
    assert post(client, {"account_number": "4100200", "postal_code": "92501A"}).status_code == 302
    assert client.get(reverse("billing:pay_account")).status_code == 200
    later = time.time() + lookup.GRANT_SECONDS + 1
    monkeypatch.setattr(lookup.time, "time", lambda: later)
    assert client.get(reverse("billing:pay_account")).status_code == 302


def test_empty_lookup_fields_say_what_to_enter_and_count_nothing(client, postal_account):
    html = post(client, {"account_number": "", "postal_code": ""}).content.decode()
    assert "Enter your account number." in html
    assert "Enter the postal code of the service address." in html
    for n in range(lookup.IP_FAILURE_LIMIT + 2):  # invalid forms never reach the lookup, so they use no attempts
        post(client, {"account_number": "", "postal_code": ""})
    assert post(client, {"account_number": "4100200", "postal_code": "92501A"}).status_code == 302
