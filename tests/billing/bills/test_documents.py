import datetime as dt
import http.server
import threading
from io import BytesIO
from unittest import mock

import pytest
from django.contrib.auth.models import Permission
from django.core.files.storage import FileSystemStorage
from django.urls import reverse
from pypdf import PdfReader

from billing.bills import documents
from billing.bills.services import bill_void
from billing.models import Bill, BillingEvent, BillLine
from billing.payments.offline import payment_record_offline
from tests.factories import BillerFactory, CustomerAccountFactory, make_bill
from tests.staff_support import staff_login

PAY_SITE = "https://pay.riverside.example"


@pytest.fixture(autouse=True)
def pdf_storage(tmp_path, monkeypatch, settings):
    """Each test stores PDFs in its own folder, so leaked files can be counted."""
    settings.SITE_URL = PAY_SITE
    storage = FileSystemStorage(location=tmp_path)
    monkeypatch.setattr(Bill._meta.get_field("pdf"), "storage", storage)
    return tmp_path


@pytest.fixture
def renders(monkeypatch):
    """Counts real WeasyPrint renders while still producing the PDF."""
    spy = mock.Mock(wraps=documents.pdf_from_html)
    monkeypatch.setattr(documents, "pdf_from_html", spy)
    return spy


@pytest.fixture
def bill_viewer(staff_user):
    staff_user.user_permissions.add(Permission.objects.get(content_type__app_label="billing", codename="view_bill"))
    return staff_user


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(BytesIO(data)).pages)


def stored_files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def html_of(bill) -> str:
    return documents.bill_document_html(document=documents.bill_document_get(bill=bill))


def test_pdf_is_a_real_pdf_showing_the_number_total_and_pay_address(account):
    bill = make_bill(account, amounts=(10000, 2345), tax=1000)  # total 133.45

    data = documents.bill_pdf_ensure(bill=bill).read()

    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    assert bill.number in text
    assert "$133.45" in text
    assert f"{PAY_SITE}/pay/" in text
    assert account.account_number in text
    assert "How to pay" in text


def test_pdf_is_rendered_once_then_served_from_storage_until_a_payment_changes_it(
    account, renders, pdf_storage, django_assert_num_queries, django_capture_on_commit_callbacks
):
    bill = make_bill(account, amounts=(8000,))

    with django_capture_on_commit_callbacks(execute=True):
        first = documents.bill_pdf_ensure(bill=bill)
    first_name = first.name
    with django_assert_num_queries(2):  # the bill (with account and biller) and its lines; no render
        again = documents.bill_pdf_ensure(bill=bill)
    assert again.name == first_name
    assert renders.call_count == 1
    assert bill.events.filter(kind=BillingEvent.Kind.PDF_RENDERED).count() == 1

    payment_record_offline(account=account, amount=3000, method="cash")
    # `bill` is now stale in memory; the document must still follow the database.
    with django_capture_on_commit_callbacks(execute=True):
        after_payment = documents.bill_pdf_ensure(bill=bill)

    assert renders.call_count == 2
    assert bill.events.filter(kind=BillingEvent.Kind.PDF_RENDERED).count() == 2
    assert after_payment.name != first_name
    text = pdf_text(after_payment.read())
    assert "$30.00" in text  # amount paid
    assert "$50.00" in text  # balance due
    assert stored_files(pdf_storage) == [after_payment.name]  # the old version was deleted, not leaked
    bill.refresh_from_db()
    assert bill.pdf.name == after_payment.name


def test_a_missing_stored_file_is_rendered_again(account, renders):
    bill = make_bill(account)
    pdf = documents.bill_pdf_ensure(bill=bill)
    pdf.storage.delete(pdf.name)

    assert documents.bill_pdf_ensure(bill=bill).read().startswith(b"%PDF")
    assert renders.call_count == 2


def _pay_in_full(bill):
    payment_record_offline(account=bill.account, amount=bill.total, method="cash")


def _void(bill):
    bill_void(bill=bill)


def _rebrand(bill):
    bill.biller.brand_color = "#aa3300"
    bill.biller.save()


def _new_tagline(bill):
    bill.biller.tagline = "Clean water since 1901"
    bill.biller.save()


def _edit_line(bill):
    BillLine.objects.filter(bill=bill).update(description="Water, corrected reading")


def _move_house(bill):
    bill.account.address_line1 = "1 New Street"
    bill.account.save()


@pytest.mark.parametrize("change", [_pay_in_full, _void, _rebrand, _new_tagline, _edit_line, _move_house])
def test_anything_the_bill_shows_changes_the_fingerprint(account, change):
    bill = make_bill(account)
    before = documents.bill_fingerprint(documents.bill_document_get(bill=bill))
    assert documents.bill_fingerprint(documents.bill_document_get(bill=bill)) == before

    change(Bill.objects.select_related("account", "biller").get(pk=bill.pk))

    assert documents.bill_fingerprint(documents.bill_document_get(bill=bill)) != before


def test_the_pay_address_comes_from_bill_pay_url(account, monkeypatch):
    bill = make_bill(account)
    monkeypatch.setattr(documents, "bill_pay_url", lambda bill: f"https://pay.example/b/{bill.number}")

    html = html_of(bill)

    assert f'href="https://pay.example/b/{bill.number}"' in html
    assert f"{PAY_SITE}/pay/" not in html


@pytest.mark.parametrize(
    ("status", "watermark"), [("draft", "DRAFT"), ("void", "VOID"), ("paid", "PAID"), ("open", None)]
)
def test_status_watermark(account, status, watermark):
    bill = make_bill(account, issue=status != "draft")
    if status == "void":
        bill_void(bill=bill)
    elif status == "paid":
        _pay_in_full(bill)

    html = html_of(bill)

    if watermark:
        assert f'<div class="watermark" aria-hidden="true">{watermark}</div>' in html
    else:
        assert 'class="watermark"' not in html
    assert ("How to pay" in html) is (status in {"draft", "open"})


def test_draft_pdf_preview_says_draft(account):
    bill = make_bill(account, amounts=(4200,), issue=False)
    text = pdf_text(documents.bill_pdf_ensure(bill=bill).read())
    assert "DRAFT" in text
    assert "$42.00" in text  # a draft shows what will be owed, though it is not payable yet


@pytest.mark.parametrize(("language", "direction"), [("ar", "rtl"), ("fa", "rtl"), ("en", "ltr"), ("es", "ltr")])
def test_document_direction_follows_the_account_language(biller, language, direction):
    account = CustomerAccountFactory(biller=biller, language=language)
    html = html_of(make_bill(account))
    assert f'<html lang="{language}" dir="{direction}">' in html


def test_arabic_bill_renders_to_pdf(biller):
    account = CustomerAccountFactory(biller=biller, language="ar", holder_name="سارة أحمد")
    bill = make_bill(account)
    text = pdf_text(documents.bill_pdf_ensure(bill=bill).read())
    assert bill.number in text
    assert account.account_number in text


def test_kwd_bill_shows_three_decimals(db):
    kwd_biller = BillerFactory(slug="gulf-water", name="Gulf Water", currency="KWD")
    account = CustomerAccountFactory(biller=kwd_biller)
    bill = make_bill(account, amounts=(12345, 500))

    html = html_of(bill)

    assert bill.currency == "KWD"
    assert "KWD12.345" in html  # line
    assert "KWD0.500" in html  # line
    assert "KWD12.845" in html  # total
    assert "KWD12.85" not in html.replace("KWD12.845", "")


def test_brand_colour_that_is_not_a_colour_never_reaches_the_stylesheet(account):
    account.biller.brand_color = "red;}*{"  # the column holds 7 characters; enough to break out of a rule
    account.biller.save()
    html = html_of(make_bill(account))
    assert "red;}" not in html
    assert "#0b5cab" in html


def test_rendering_fetches_nothing_over_the_network(account):
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        html = (
            f'<html><head><link rel="stylesheet" href="{url}/x.css"></head>'
            f'<body><img src="{url}/logo.png"><p style="background:url({url}/bg.png)">Bill</p></body></html>'
        )
        data = documents.pdf_from_html(html)
    finally:
        server.shutdown()
        thread.join()
    assert data.startswith(b"%PDF")
    assert hits == []


# Staff views


def test_staff_with_view_bill_downloads_the_pdf(client, bill_viewer, account):
    bill = make_bill(account)
    staff_login(client, bill_viewer)

    response = client.get(reverse("billing:staff_bill_pdf", args=[bill.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="bill-{bill.number}.pdf"'
    body = b"".join(response.streaming_content)
    assert body.startswith(b"%PDF")
    assert bill.number in pdf_text(body)
    event = bill.events.get(kind=BillingEvent.Kind.PDF_RENDERED)
    assert event.actor == bill_viewer


def test_staff_with_view_bill_sees_the_printable_bill(client, bill_viewer, account):
    bill = make_bill(account)
    staff_login(client, bill_viewer)

    response = client.get(reverse("billing:staff_bill_print", args=[bill.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert bill.number in html
    assert reverse("billing:staff_bill_pdf", args=[bill.pk]) in html
    assert f"{PAY_SITE}/pay/" in html


@pytest.mark.parametrize("name", ["billing:staff_bill_pdf", "billing:staff_bill_print"])
def test_staff_without_view_bill_are_forbidden(client, staff_user, account, name, renders):
    bill = make_bill(account)
    staff_login(client, staff_user)

    response = client.get(reverse(name, args=[bill.pk]))

    assert response.status_code == 403
    assert renders.call_count == 0


@pytest.mark.parametrize("name", ["billing:staff_bill_pdf", "billing:staff_bill_print"])
def test_anonymous_and_non_staff_are_sent_to_the_admin_login(client, django_user_model, account, name):
    bill = make_bill(account)
    url = reverse(name, args=[bill.pk])

    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))

    payer = django_user_model.objects.create_user(email="payer@example.com", password="pw-Payer-123")
    payer.user_permissions.add(Permission.objects.get(content_type__app_label="billing", codename="view_bill"))
    client.force_login(payer)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_unknown_bill_is_404(client, bill_viewer):
    staff_login(client, bill_viewer)
    assert client.get(reverse("billing:staff_bill_pdf", args=[999999])).status_code == 404
    assert client.get(reverse("billing:staff_bill_print", args=[999999])).status_code == 404


def test_period_and_dates_are_on_the_bill(account):
    today = dt.date(2026, 3, 15)
    bill = make_bill(account, today=today)
    html = html_of(bill)
    assert "February 13, 2026 to March 14, 2026" in html  # one date style on every page: CLDR's long date
    assert "March 29, 2026" in html  # due date


def test_the_printed_pay_address_is_the_bills_signed_pay_link(account, client, settings):
    from billing.bills import paylinks

    bill = make_bill(account)
    url = paylinks.bill_pay_url(bill)
    assert f'href="{url}"' in html_of(bill)
    # The printed link opens this bill's payment screen directly, with no lookup in between.
    response = client.get(url.removeprefix(settings.SITE_URL), follow=True)
    assert response.status_code == 200
    assert bill.account.account_number in response.content.decode()
