"""The e-bill replaces paper (issue 10, items 11 and 12): the biller's logo, usage with a 12-period history chart,
a QR code of the pay link, a payment stub for mail-in payers, and one paper size per biller."""

import datetime as dt
import re
from decimal import Decimal
from io import BytesIO

import pytest
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image
from pypdf import PdfReader

from billing.bills import documents, graphics
from billing.bills.csv_rows import bill_import_file_read
from billing.bills.imports import bills_import
from billing.bills.paylinks import bill_pay_url
from billing.bills.services import LineInput, bill_create, bill_issue
from billing.models import Bill, Biller, BillLine
from tests.factories import BillerFactory, CustomerAccountFactory, make_bill
from tests.staff_support import staff_login

PAY_SITE = "https://pay.riverside.example"
A4_POINTS = (595, 842)
LETTER_POINTS = (612, 792)


@pytest.fixture(autouse=True)
def private_files(tmp_path, monkeypatch, settings):
    settings.SITE_URL = PAY_SITE
    storage = FileSystemStorage(location=tmp_path)
    monkeypatch.setattr(Bill._meta.get_field("pdf"), "storage", storage)
    monkeypatch.setattr(Biller._meta.get_field("logo"), "storage", storage)
    return tmp_path


def png_bytes(colour=(200, 30, 30), size=(40, 20)) -> bytes:
    buffer = BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def html_of(bill, **kwargs) -> str:
    return documents.bill_document_html(document=documents.bill_document_get(bill=bill), **kwargs)


def pdf_of(bill) -> PdfReader:
    return PdfReader(BytesIO(documents.bill_pdf_ensure(bill=bill).read()))


def metered_bill(account, *, period_end: dt.date, kwh: str, number: str, issue=True, start=None) -> Bill:
    bill = bill_create(
        account=account,
        number=number,
        period_start=period_end.replace(day=1),
        period_end=period_end,
        due_date=period_end + dt.timedelta(days=20),
        lines=[
            LineInput(
                description="Electricity",
                quantity=Decimal(kwh),
                unit_amount=15,
                usage_unit="kWh",
                meter_start=start,
                meter_end=None if start is None else start + Decimal(kwh),
            ),
            LineInput(description="Service charge", amount=900),
        ],
    )
    return bill_issue(bill=bill) if issue else bill


# --- Logo -----------------------------------------------------------------------------------------------------------


@pytest.fixture
def superclient(client, django_user_model):
    admin = django_user_model.objects.create_superuser(email="root@riverside.example", password="pw-Root-123")
    return staff_login(client, admin)


def _biller_form(biller, **extra) -> dict:
    data = {
        "name": biller.name, "slug": biller.slug, "brand_color": biller.brand_color, "tagline": "",
        "remit_address": "", "paper_size": "A4", "calendar": "gregorian", "currency": "USD",
        "time_zone": "America/Chicago", "support_email": "", "support_phone": "", "lookup_factor": "postal_code",
        "bank_reference_scheme": biller.bank_reference_scheme,
        "minimum_payment": 100, "maximum_payment": "", "convenience_fee_fixed": "0.00",
        "convenience_fee_basis_points": 0, "tips_enabled": "", "tip_presets": "[15, 20, 25]",
        "pay_link_valid_days": 60, "reminder_schedule": "[-5, 0, 3, 10]", "retry_schedule": "[1, 3, 5, 7]",
        # The payment plan rules inline (billing/admin/plans.py), left empty.
        "plan_rules-TOTAL_FORMS": "0", "plan_rules-INITIAL_FORMS": "0",
    }
    return data | extra


def test_a_logo_uploaded_in_the_admin_is_stored_privately_and_embedded_in_the_ebill_and_pdf(
    superclient, account, private_files
):
    biller = account.biller
    upload = SimpleUploadedFile("riverside.png", png_bytes(), content_type="image/png")
    response = superclient.post(
        reverse("admin:billing_biller_change", args=[biller.pk]), _biller_form(biller, logo=upload)
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    biller.refresh_from_db()
    assert biller.logo.name.startswith("logos/")
    assert (private_files / biller.logo.name).is_file()  # in the private storage, not under MEDIA_ROOT

    bill = make_bill(account)
    html = html_of(bill)
    assert re.search(r'<img class="logo" src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="Riverside Water">', html)
    page = pdf_of(bill).pages[0]
    assert len(page.images) == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "Upload a valid image"),
        ("logo.png", b"this is not a picture", "Upload a valid image"),
        ("big.png", png_bytes(size=(2400, 2400)) + b"\0" * 600_000, "512 KB"),
    ],
)
def test_the_admin_refuses_a_logo_that_is_not_a_small_png_or_jpeg(superclient, biller, name, content, message):
    upload = SimpleUploadedFile(name, content)
    response = superclient.post(
        reverse("admin:billing_biller_change", args=[biller.pk]), _biller_form(biller, logo=upload)
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    biller.refresh_from_db()
    assert not biller.logo


# --- Usage and its history -------------------------------------------------------------------------------------------


def test_metered_bill_shows_this_periods_usage_and_a_twelve_period_chart_with_its_numbers(account):
    ends = [dt.date(2025 + (m // 12), m % 12 + 1, 28) for m in range(14)]  # Jan 2025 .. Feb 2026
    for i, end in enumerate(ends[:-1]):
        metered_bill(account, period_end=end, kwh=str(300 + i * 10), number=f"E-{i:02d}")
    make_bill(account, number="NOT-METERED")  # bills without metered lines are not usage periods
    current = metered_bill(account, period_end=ends[-1], kwh="512.5", number="E-13", start=Decimal("10400"))

    html = html_of(current)

    assert "This period: <strong><bdi dir=\"ltr\">512.5 kWh</bdi></strong>" in html
    assert 'meter read <bdi dir="ltr">10,400</bdi> then <bdi dir="ltr">10,912.5</bdi>' in html
    chart = re.search(r'<svg class="usage-chart".*?</svg>', html, re.S).group(0)
    assert chart.count("<rect") == 12  # the last 12 periods, this one included
    assert chart.count('class="bar current"') == 1
    assert "<title id=" in chart and "<desc id=" in chart
    assert 'role="img"' in chart and "aria-labelledby=" in chart
    table = re.search(r'<table class="usage-table">.*?</table>', html, re.S).group(0)
    assert table.count("<tr") == 13  # header + 12 periods
    assert "512.5" in table and "320" in table and "310" not in table  # E-00 (300) and E-01 (310) fell off
    assert "February 28, 2026" in table


def test_an_unmetered_bill_has_no_usage_box_and_costs_no_extra_query(account, django_assert_num_queries):
    bill = make_bill(account)
    with django_assert_num_queries(2):
        document = documents.bill_document_get(bill=bill)
    assert 'class="usage"' not in documents.bill_document_html(document=document)


def test_usage_renders_in_the_pdf(account):
    metered_bill(account, period_end=dt.date(2026, 1, 31), kwh="410", number="E-1")
    bill = metered_bill(account, period_end=dt.date(2026, 2, 28), kwh="455", number="E-2")
    text = "\n".join(page.extract_text() for page in pdf_of(bill).pages)
    assert "Your usage" in text
    assert "455 kWh" in text


def test_the_import_reads_meter_readings_and_units(biller):
    content = (
        "account_number,holder_name,postal_code,bill_number,period_start,period_end,due_date,description,"
        "quantity,amount,usage_unit,meter_start,meter_end\n"
        "20000001,Ana Díaz,92501,W-1,2026-01-01,2026-01-31,2026-02-20,Water,,31.25,m3,1200,1212.5\n"
        "20000001,Ana Díaz,92501,W-1,2026-01-01,2026-01-31,2026-02-20,Sewer,,18.00,,,\n"
    ).encode()

    result = bills_import(biller=biller, csv_file=bill_import_file_read(content=content))

    assert result.ok, result.errors
    water = BillLine.objects.get(bill__number="W-1", description="Water")
    assert (water.usage_unit, water.meter_start, water.meter_end) == ("m3", Decimal("1200"), Decimal("1212.5"))
    assert water.quantity == Decimal("12.5")  # no quantity given: what the meter moved
    assert BillLine.objects.get(description="Sewer").usage_unit == ""


@pytest.mark.parametrize(
    ("cells", "column"),
    [(",1212.5,1200", "meter_end"), ("kWh,abc,", "meter_start"), (",100,200", "usage_unit")],
)
def test_the_import_refuses_bad_meter_readings(biller, cells, column):
    content = (
        "account_number,holder_name,postal_code,bill_number,period_start,period_end,due_date,description,amount,"
        "usage_unit,meter_start,meter_end\n"
        f"20000001,Ana Díaz,92501,W-1,2026-01-01,2026-01-31,2026-02-20,Water,31.25,{cells}\n"
    ).encode()
    result = bills_import(biller=biller, csv_file=bill_import_file_read(content=content))
    assert not result.ok
    assert column in {error.column for error in result.errors}
    assert not Bill.objects.exists()


# --- QR code and payment stub ---------------------------------------------------------------------------------------


def test_the_qr_code_encodes_the_bills_pay_link(account):
    bill = make_bill(account)
    html = html_of(bill)
    svg = re.search(r'<svg class="qr".*?</svg>', html, re.S).group(0)
    assert 'role="img"' in svg and 'aria-label="QR code' in svg
    # The same modules as the library draws for the pay link, and for nothing else.
    assert svg == str(graphics.qr_svg(bill_pay_url(bill), label="QR code: scan it to pay this bill online"))
    assert svg != str(graphics.qr_svg(bill_pay_url(bill) + "x", label="QR code: scan it to pay this bill online"))


def test_the_qr_code_needs_no_network_and_reaches_the_pdf(account):
    bill = make_bill(account)
    reader = pdf_of(bill)  # rendering refuses every URL but data: (test_documents checks the fetcher)
    content = reader.pages[0].get_contents().get_data()
    assert content.count(b" re") + content.count(b" l") > 50  # the QR's modules are vector paths on the page


def test_a_mail_in_payer_gets_a_payment_stub(account):
    account.biller.remit_address = "Riverside Water\nPO Box 139\nRiverside CA 92501"
    account.biller.save()
    bill = make_bill(account, amounts=(6249,))
    text = "\n".join(page.extract_text() for page in pdf_of(bill).pages)
    stub = " ".join(text[text.index("Payment stub"):].split())
    assert bill.number in stub and account.account_number in stub
    assert "$62.49" in stub and "Amount enclosed" in stub and "PO Box 139" in stub


def test_no_stub_without_a_mail_address_or_on_a_paid_bill(account):
    bill = make_bill(account)
    assert "Payment stub" not in html_of(bill)


# --- Paper size ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("paper", "points"), [("A4", A4_POINTS), ("letter", LETTER_POINTS)])
def test_bills_use_the_billers_paper_size_whatever_the_accounts_country(biller, paper, points):
    biller.paper_size = paper
    biller.save()
    for country in ("US", "DE"):
        account = CustomerAccountFactory(biller=biller, country=country)
        box = pdf_of(make_bill(account)).pages[0].mediabox
        assert (round(box.width), round(box.height)) == points
