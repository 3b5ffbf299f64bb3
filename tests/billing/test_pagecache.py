"""The page cache (billing/pagecache.py): a payer page is served from the shared cache only while every row it was
rendered from is unchanged, with each visitor's own CSRF token and CSP nonce, and never to anyone it was not for.

A request that rendered the page has `response.templates`; one served from the cache has none."""

import re

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.cache import SessionStore
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from accounts.models import AccountLink, User
from accounts.services import account_link_grant
from billing import pagecache
from billing.models import Bill, Biller
from billing.payments import lookup
from billing.payments.offline import payment_record_offline
from tests.factories import CustomerAccountFactory, make_bill

SCREEN = "/pay/account/"
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def rendered(response) -> bool:
    assert response.status_code == 200, response.status_code
    return bool(response.templates)


def warm(client, path: str) -> None:
    """The first request records the page's statements, the second stores the page, the third is served from it; one
    more when the first also filled the biller cache (its statements then differ from the second's)."""
    renders = [rendered(client.get(path)) for _ in range(4)]
    assert renders[-1] is False and renders[0] is True, renders


def granted(account) -> Client:
    client = Client()
    session = client.session
    session[lookup.GRANT_SESSION_KEY] = {"account_id": account.pk, "expires_at": 2**40}
    session.save()
    return client


def balance(html: str) -> str:
    return re.search(r'data-testid="balance">([^<]*)<', html).group(1)


@pytest.mark.parametrize("path", ["/", "/pay/"])
def test_public_pages_come_from_the_cache_from_their_third_request(client, biller, path):
    from billing.bills.selectors import biller_for_site

    biller_for_site()  # in the cache, as on a running site
    assert [rendered(client.get(path)) for _ in range(3)] == [True, True, False]
    again = client.get(path)
    assert not rendered(again)
    assert biller.name in again.content.decode()


def test_a_cached_public_page_runs_no_query(client, biller, django_assert_num_queries):
    warm(client, "/")
    with django_assert_num_queries(0):
        assert not rendered(client.get("/"))


def test_each_visitor_gets_a_csrf_token_of_their_own_that_works(biller):
    warm(Client(), "/")
    stranger = Client(enforce_csrf_checks=True)
    page = stranger.get("/")
    assert not rendered(page)
    tokens = set(TOKEN.findall(page.content.decode()))
    assert len(tokens) == 1 and pagecache._CSRF_MARK not in page.content.decode()
    assert settings_csrf_cookie(page)  # the cookie the token belongs to is set, as on a rendered page
    answer = stranger.post(reverse("set_language"), {"language": "es", "next": "/", "csrfmiddlewaretoken": tokens.pop()})
    assert answer.status_code == 302
    # A token from someone else's page would not have done: the cached copy holds none.
    other = Client(enforce_csrf_checks=True)
    other.get("/")
    refused = other.post(reverse("set_language"), {"language": "es", "next": "/", "csrfmiddlewaretoken": "x" * 64})
    assert refused.status_code == 403


def settings_csrf_cookie(response) -> bool:
    from django.conf import settings

    return settings.CSRF_COOKIE_NAME in response.cookies


def test_the_csp_nonce_is_new_for_every_response_and_matches_its_header(client, biller):
    warm(client, "/")
    nonces = []
    for _ in range(2):
        response = client.get("/")
        assert not rendered(response)
        nonce = re.search(r'<style nonce="([^"]+)">', response.content.decode()).group(1)
        assert f"'nonce-{nonce}'" in response["Content-Security-Policy"]
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


def test_a_write_behind_the_orms_back_is_seen_at_once(account):
    """No signal, no receiver: the bill's row changed, so the rows the page read changed."""
    bill = make_bill(account, amounts=(5000,), due_in_days=10)
    payer = granted(account)
    warm(payer, SCREEN)
    assert balance(payer.get(SCREEN).content.decode()) == "$50.00"
    Bill.objects.filter(pk=bill.pk).update(amount_paid=2000)
    response = payer.get(SCREEN)
    assert rendered(response)
    assert balance(response.content.decode()) == "$30.00"


def test_a_payment_through_the_core_is_seen_at_once(account):
    make_bill(account, amounts=(5000,), due_in_days=10)
    payer = granted(account)
    warm(payer, SCREEN)
    payment_record_offline(account=account, amount=1234, method="cash")
    assert balance(payer.get(SCREEN).content.decode()) == "$37.66"


def test_one_accounts_page_is_never_served_for_another(biller):
    mine, theirs = CustomerAccountFactory(biller=biller), CustomerAccountFactory(biller=biller)
    for acct in (mine, theirs):
        make_bill(acct, amounts=(1000,), due_in_days=5)
    warm(granted(mine), SCREEN)
    html = granted(theirs).get(SCREEN).content.decode()
    assert theirs.account_number in html
    assert mine.account_number not in html


def test_a_guest_with_no_grant_is_sent_to_the_lookup_with_the_message_not_the_cached_form(client, account):
    make_bill(account, amounts=(1000,), due_in_days=5)
    warm(client, "/pay/")
    redirected = client.get(SCREEN)
    assert redirected.status_code == 302
    page = client.get("/pay/")
    assert rendered(page)  # a message was waiting: rendered, and shown
    assert "Please find your account first" in page.content.decode()
    assert not rendered(client.get("/pay/"))  # shown once; the cached form again


def test_the_dashboard_follows_the_payers_own_row_and_their_accounts(client, biller, django_user_model):
    user = django_user_model.objects.create_user(email="jane@example.com", password="A-Passw0rd-for-tests")
    from allauth.account.models import EmailAddress

    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    acct = CustomerAccountFactory(biller=biller)
    make_bill(acct, amounts=(1000,), due_in_days=5)
    account_link_grant(user=user, account=acct, via=AccountLink.Via.LOOKUP)
    client.force_login(user)
    path = reverse("accounts:dashboard")
    warm(client, path)
    User.objects.filter(pk=user.pk).update(email="jane.new@example.com")
    assert "jane.new@example.com" in client.get(path).content.decode()
    warm_again = [rendered(client.get(path)) for _ in range(2)]
    assert warm_again == [False, False]
    second = CustomerAccountFactory(biller=biller)
    account_link_grant(user=user, account=second, via=AccountLink.Via.LOOKUP)
    response = client.get(path)
    assert rendered(response) and second.account_number in response.content.decode()


def test_a_deactivated_payer_is_signed_out_not_shown_the_cached_dashboard(client, biller, django_user_model):
    user = django_user_model.objects.create_user(email="jane@example.com", password="A-Passw0rd-for-tests")
    from allauth.account.models import EmailAddress

    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    client.force_login(user)
    path = reverse("accounts:dashboard")
    warm(client, path)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert client.get(path).status_code == 302


def test_a_biller_change_drops_every_page(client, biller):
    warm(client, "/")
    biller.name = "Riverside Power"
    biller.save()
    response = client.get("/")
    assert rendered(response) and "Riverside Power" in response.content.decode()


def test_a_change_made_behind_the_biller_cache_is_not_served_past_the_biller_cache(client, biller):
    """The biller reaches pages from the shared cache; a raw UPDATE drops neither. pages_forget is what the biller
    cache's receivers run, and it must drop the pages with it."""
    warm(client, "/")
    Biller.objects.filter(pk=biller.pk).update(name="Renamed Behind")
    from billing.bills.selectors import biller_cache_forget

    biller_cache_forget(biller.pk)
    assert "Renamed Behind" in client.get("/").content.decode()


def test_another_machines_biller_change_reaches_this_process_within_a_second(client, biller, monkeypatch):
    """A process keeps the pages it served and reads the shared generation at most once a second: a change made
    elsewhere (the generation dropped from the shared cache, not from this process) shows after that second."""
    warm(client, "/")
    Biller.objects.filter(pk=biller.pk).update(name="Renamed Elsewhere")
    from billing.bills.selectors import _biller_cache_key

    pagecache.cache.delete_many([pagecache._GENERATION_KEY, _biller_cache_key()])  # what the other machine did
    assert not rendered(client.get("/"))  # within the second: this process's copy
    later = pagecache.time.monotonic() + pagecache._Local.GENERATION_SECONDS + 0.01
    monkeypatch.setattr(pagecache.time, "monotonic", lambda: later)
    response = client.get("/")
    assert rendered(response) and "Renamed Elsewhere" in response.content.decode()


def test_languages_are_kept_apart(client, biller):
    warm(client, "/")
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="ar")
    assert 'dir="rtl"' in response.content.decode()


def test_pages_are_rendered_again_in_the_next_quarter_hour(client, biller, monkeypatch):
    """Dates are shown on the biller's clock (overdue, due today): a page never outlives the quarter hour it was
    rendered in, and every time zone's midnight falls on a quarter hour."""
    warm(client, "/")
    later = pagecache.time.time() + 15 * 60
    monkeypatch.setattr(pagecache.time, "time", lambda: later)
    assert rendered(client.get("/"))


def test_a_made_up_query_string_is_never_cached(client, biller):
    assert all(rendered(client.get("/?utm_source=spam")) for _ in range(3))


def test_the_page_cache_can_be_turned_off(client, biller, settings):
    settings.PAGE_CACHE_SECONDS = 0
    assert all(rendered(client.get("/")) for _ in range(3))


def test_a_render_that_writes_is_never_cached(rf, biller):
    """Serving it from the cache would skip the write: such a page renders every time."""
    calls = []

    @pagecache.page_cached()
    def view(request):
        calls.append(1)
        Biller.objects.filter(pk=biller.pk).update(tagline=f"visit {len(calls)}")
        return HttpResponse("<p>hello</p>")

    for _ in range(4):
        assert view(_plain_request(rf, "/written/")).status_code == 200
    assert len(calls) == 4


def _plain_request(rf, path: str):
    request = rf.get(path)
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    request.user = AnonymousUser()
    return request


def test_a_cached_page_keeps_the_headers_its_view_set(rf, biller):
    calls = []

    @pagecache.page_cached()
    def view(request):
        calls.append(1)
        response = HttpResponse("<p>hello</p>", content_type="text/html; charset=utf-8")
        response["Content-Disposition"] = 'inline; filename="hello.html"'
        return response

    responses = [view(_plain_request(rf, "/headers/")) for _ in range(4)]
    assert len(calls) == 2  # recorded, stored; then served
    assert responses[-1]["Content-Disposition"] == 'inline; filename="hello.html"'
    assert responses[-1]["Content-Type"] == "text/html; charset=utf-8"
    assert responses[-1].content == b"<p>hello</p>"


def test_a_new_setting_is_a_new_release(settings):
    pagecache._release_stamp.cache_clear()
    before = pagecache._release_stamp()
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_another"
    pagecache._release_stamp.cache_clear()
    try:
        assert pagecache._release_stamp() != before
    finally:
        pagecache._release_stamp.cache_clear()


STAMP_IN_A_PROCESS = """
import django
django.setup()
from django.conf import settings
settings.BILLPAY_TEST_CHANNELS = {"email", "sms", "push", "letter", "whatsapp", "fax"}
from billing import pagecache
print(pagecache._release_stamp())
"""


def test_every_process_and_folder_of_one_release_has_the_same_stamp(settings, tmp_path):
    """Pages are shared by every process of every machine: a set in the settings (iterated in an order that changes
    with each process's string hashing) and the folder the release is installed in must not change the stamp."""
    import os
    import subprocess
    import sys

    stamps = {
        subprocess.run(
            [sys.executable, "-c", STAMP_IN_A_PROCESS], cwd=settings.BASE_DIR, capture_output=True, text=True,
            check=True, env={**os.environ, "PYTHONHASHSEED": str(seed), "DJANGO_SETTINGS_MODULE": "config.settings.test"},
        ).stdout.strip().splitlines()[-1]
        for seed in (1, 2, 3)
    }  # fmt: skip
    assert len(stamps) == 1, stamps

    settings.BASE_DIR = settings.BASE_DIR  # overridden from here on, as below (an override renames SETTINGS_MODULE)
    pagecache._release_stamp.cache_clear()
    try:
        here = pagecache._release_stamp()
        elsewhere = tmp_path / "srv-billpay"
        elsewhere.symlink_to(settings.BASE_DIR, target_is_directory=True)
        settings.BASE_DIR = elsewhere
        pagecache._release_stamp.cache_clear()
        assert pagecache._release_stamp() == here
    finally:
        pagecache._release_stamp.cache_clear()


def test_a_statement_that_no_longer_runs_only_means_rendering(client, biller, monkeypatch):
    warm(client, "/pay/")
    (key,) = _page_keys()
    entry = pagecache.cache.get(key)
    entry["queries"] = [("default", "SELECT no_such_column FROM billing_biller", ())]
    pagecache.cache.set(key, entry)
    pagecache._local.forget()  # as a process that has not served the page yet
    assert rendered(client.get("/pay/"))
    assert biller.name in client.get("/pay/").content.decode()


def _page_keys() -> list[str]:
    """The tests' LocMemCache stores keys with its prefix and version (":1:billpay:page:…")."""
    keys = [key.split(":", 2)[2] for key in pagecache.cache._cache]
    return [key for key in keys if key.startswith("billpay:page:")]


def test_placeholders_are_numbered_for_postgresql_and_escaped_percents_kept():
    sql = "SELECT '100%%' FROM t WHERE a = %s AND b LIKE %s AND c = '%%s' AND d = %s"
    assert pagecache._numbered(sql) == "SELECT '100%' FROM t WHERE a = $1 AND b LIKE $2 AND c = '%s' AND d = $3"


@pytest.mark.django_db
def test_a_statement_with_a_literal_percent_is_replayed_as_it_ran(biller):
    """The digest runs the recorded statements again (on PostgreSQL through a raw cursor, `$n` placeholders): a
    statement whose text holds a literal % answers the same rows, so its page is served, and a change is still seen."""
    from django.db import connection
    from django.test import RequestFactory

    renders = []

    def page(request):
        renders.append(request)
        with connection.cursor() as cursor:
            cursor.execute("SELECT name || '%%' FROM billing_biller WHERE id = %s", [biller.pk])
            return HttpResponse(cursor.fetchone()[0])

    cached = pagecache.page_cached()(page)

    def get():
        request = RequestFactory().get("/percent/")
        request.user, request.session = AnonymousUser(), SessionStore()
        return cached(request).content.decode()

    assert [get() for _ in range(3)] == [f"{biller.name}%"] * 3
    assert len(renders) == 2  # recorded, stored, then served: its statement ran again and answered the same rows
    Biller.objects.filter(pk=biller.pk).update(name="Renamed behind the cache")
    assert get() == "Renamed behind the cache%"
    assert len(renders) == 3
