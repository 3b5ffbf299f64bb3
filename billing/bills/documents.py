"""The bill as a document: printable HTML and a PDF of it (WeasyPrint), stored once per version of the bill.

A stored PDF carries a fingerprint: a SHA-256 of everything the document shows plus BILL_DOCUMENT_VERSION. When a
payment, a status change, a line or the biller's branding changes what the bill would show, the fingerprint differs and
the PDF is rendered again; otherwise the stored file is served as is.
"""

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal

from babel.dates import format_date
from babel.numbers import format_decimal
from django.conf import settings
from django.http import FileResponse
from django.utils.text import get_valid_filename
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Q, Sum
from django.db.models.fields.files import FieldFile
from django.template.loader import render_to_string
from django.utils import translation

from ..clock import date_display
from ..events import event_record
from ..models import Bill, Biller, BillingEvent, BillLine
from ..money import format_money
from .graphics import UsagePoint, qr_svg, usage_chart_svg
from .paylinks import bill_pay_url  # the bill's signed pay link: stable per bill, so it can be part of the fingerprint
from .selectors import bank_transfer_details

# Bump when the template, its CSS or the document's wording changes, so that every stored PDF is rendered again.
# 3: logo, usage history, QR code, payment stub, the biller's paper size, one date style
# 4: the bank transfer reference and details in "how to pay" and on the stub
BILL_DOCUMENT_VERSION = "4"
BILL_DOCUMENT_TEMPLATE = "billing/bill_document.html"
USAGE_PERIODS = 12  # the history chart shows this many billing periods, the current one last

_LOGO_TYPES = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg"}
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_DEFAULT_BRAND = "#0b5cab"
_WATERMARKS = {Bill.Status.DRAFT, Bill.Status.PAID, Bill.Status.VOID}


@dataclass(frozen=True)
class BillDocument:
    """A bill and its lines, fetched together, ready to fingerprint and render."""

    bill: Bill
    lines: list[BillLine]
    usage_history: list[tuple] = field(default_factory=list)  # (period_end, usage) oldest first, this bill's last
    usage_unit: str = ""

    @property
    def language(self) -> str:
        return self.bill.account.language or settings.LANGUAGE_CODE

    @property
    def page_size(self) -> str:
        return page_size_of(self.bill.biller)

    @property
    def brand_color(self) -> str:
        # The model validator is skipped by imports and raw saves; never let an odd value into the stylesheet.
        colour = self.bill.biller.brand_color or ""
        return colour if _COLOUR.match(colour) else _DEFAULT_BRAND


def page_size_of(biller: Biller) -> str:
    """The biller's one paper size, for bills and receipts alike (a CSS @page size)."""
    return "A4" if biller.paper_size == Biller.PaperSize.A4 else "letter"


def bill_document_get(*, bill: Bill | int) -> BillDocument:
    """Two cheap queries: the bill with its account and biller, then its lines; a third for the usage history only when
    the bill has metered lines. Always from the database, so a stale instance in the caller's hands can never produce
    an out-of-date document."""
    pk = bill.pk if isinstance(bill, Bill) else bill
    fresh = Bill.objects.select_related("account", "biller").get(pk=pk)
    lines = list(BillLine.objects.filter(bill_id=pk).order_by("position", "pk"))
    unit = next((line.usage_unit for line in lines if line.usage_unit), "")
    history = _usage_history(fresh, unit) if unit else []
    return BillDocument(bill=fresh, lines=lines, usage_history=history, usage_unit=unit)


def _usage_history(bill: Bill, unit: str) -> list[tuple]:
    """The account's usage in `unit` for up to USAGE_PERIODS periods ending with this bill's, oldest first. Void bills
    and other drafts are left out: they were never (or are no longer) what the payer was billed."""
    rows = (
        Bill.objects.filter(account_id=bill.account_id, period_end__lte=bill.period_end)
        .filter(Q(pk=bill.pk) | ~Q(status__in=[Bill.Status.VOID, Bill.Status.DRAFT]))
        .annotate(usage=Sum("lines__quantity", filter=Q(lines__usage_unit=unit)))
        .filter(usage__isnull=False)
        .order_by("-period_end", "-pk")
        .values_list("period_end", "usage")[:USAGE_PERIODS]
    )
    return list(reversed(list(rows)))


def bill_fingerprint(document: BillDocument) -> str:
    """SHA-256 of every value the document shows, plus the template version."""
    bill, account, biller = document.bill, document.bill.account, document.bill.biller
    shown = {
        "version": BILL_DOCUMENT_VERSION,
        "bill": [
            bill.number, bill.status, bill.currency, bill.period_start, bill.period_end, bill.issue_date,
            bill.due_date, bill.subtotal, bill.tax, bill.total, bill.amount_paid,
        ],
        "account": [
            account.account_number, account.holder_name, account.address_line1, account.address_line2,
            account.city, account.region, account.postal_code, account.country, document.language,
        ],
        "biller": [
            biller.name, document.brand_color, biller.tagline, biller.remit_address, biller.support_email,
            biller.support_phone, biller.logo.name, biller.paper_size, biller.calendar,
        ],
        "lines": [
            [line.description, str(line.quantity), line.unit_amount, line.amount, line.tax_amount, line.usage_unit,
             str(line.meter_start), str(line.meter_end)]
            for line in document.lines
        ],
        "usage": [[period_end, str(usage)] for period_end, usage in document.usage_history],
        "pay_url": bill_pay_url(bill),
        "bank_transfer": bank_transfer_details(account=account, biller=biller),
    }
    payload = json.dumps(shown, default=str, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _readable_on(colour: str) -> str:
    """Black or white, whichever reads better on the brand colour (WCAG relative luminance)."""

    def channel(hex_pair: str) -> float:
        c = int(hex_pair, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "#000000" if luminance > 0.179 else "#ffffff"


def _logo_data_uri(biller: Biller) -> str:
    """The biller's logo as a data: URI, read through its storage; "" when there is none or it cannot be read. The
    document is self-contained, so the logo is never fetched by URL (and private storage needs no public address)."""
    if not biller.logo:
        return ""
    try:
        with biller.logo.open("rb") as file:
            data = file.read()
    except OSError:
        return ""  # a logo lost from storage must not stop bills
    kind = next((mime for magic, mime in _LOGO_TYPES.items() if data.startswith(magic)), None)
    return f"data:{kind};base64,{base64.b64encode(data).decode()}" if kind else ""


def _usage(document: BillDocument, language: str, quantity, colour: str) -> dict | None:
    """The usage box: this period's usage, the history chart and its numbers as a table. None for unmetered bills."""
    if not document.usage_history:
        return None
    bill, unit, locale = document.bill, document.usage_unit, translation.to_locale(language)
    points = []
    for period_end, usage in document.usage_history:
        current = period_end == bill.period_end
        points.append(
            UsagePoint(
                label=_babel_date(period_end, "LLL", locale),
                usage=Decimal(usage),
                shown=quantity(usage),
                current=current,
            )
        )
    readings = [line for line in document.lines if line.usage_unit == unit and line.meter_end is not None]
    this_period = quantity(sum((line.quantity for line in document.lines if line.usage_unit == unit), Decimal(0)))
    title = translation.gettext("Your usage for the last %(count)s billing periods, in %(unit)s") % {
        "count": len(points), "unit": unit,
    }
    description = translation.gettext("This period: %(usage)s %(unit)s.") % {"usage": this_period, "unit": unit}
    return {
        "unit": unit,
        "this_period": this_period,
        "readings": [
            {"description": line.description, "start": quantity(line.meter_start) if line.meter_start is not None
             else "", "end": quantity(line.meter_end)}
            for line in readings
        ],
        "chart": usage_chart_svg(
            points, title=title, description=description, chart_id=f"usage-{bill.pk}", colour=colour
        ),
        "table": [
            {"period": date_display(period_end, biller=bill.biller, language=language), "usage": quantity(usage),
             "current": period_end == bill.period_end}
            for period_end, usage in document.usage_history
        ],
    }


def _babel_date(value, pattern: str, locale: str) -> str:
    try:
        return format_date(value, pattern, locale=locale)
    except Exception:  # an unknown locale must never break a bill
        return format_date(value, pattern, locale="en")


def _context(document: BillDocument, language: str) -> dict:
    """Must run inside translation.override(language): money, numbers, dates and labels follow it."""
    bill = document.bill
    biller = bill.biller
    locale = translation.to_locale(language)

    def money(minor: int) -> str:
        return format_money(minor, bill.currency)

    def quantity(value) -> str:
        try:
            return format_decimal(value, locale=locale)
        except Exception:  # an unknown locale must never break a bill
            return format_decimal(value, locale="en")

    def day(value) -> str:
        return date_display(value, biller=biller, language=language)

    account = bill.account
    pay_url = bill_pay_url(bill)
    is_payable = bill.status in Bill.PAYABLE_STATUSES or bill.status == Bill.Status.DRAFT
    return {
        "bill": bill,
        "account": account,
        "lang": language,
        "dir": "rtl" if translation.get_language_bidi() else "ltr",
        "dates": {
            "period_start": day(bill.period_start),
            "period_end": day(bill.period_end),
            "issue": day(bill.issue_date),
            "due": day(bill.due_date),
        },
        "logo": _logo_data_uri(biller),
        "usage": _usage(document, language, quantity, document.brand_color),
        "qr": qr_svg(pay_url, label=translation.gettext("QR code: scan it to pay this bill online")) if is_payable
        else "",
        "page_size": document.page_size,
        "brand_color": document.brand_color,
        "brand_ink": _readable_on(document.brand_color),
        "watermark": bill.status if bill.status in _WATERMARKS else "",
        "is_payable": is_payable,
        "pay_url": pay_url,
        "bank_transfer": bank_transfer_details(account=account, biller=bill.biller),
        "service_address": [
            part
            for part in (
                account.address_line1,
                account.address_line2,
                " ".join(p for p in (account.city, account.region, account.postal_code) if p),
            )
            if part
        ],
        "lines": [
            {
                "description": line.description,
                "quantity": quantity(line.quantity),
                "unit_price": money(line.unit_amount),
                "amount": money(line.amount),
                "tax": money(line.tax_amount) if line.tax_amount else "",
                "unit": line.usage_unit,
            }
            for line in document.lines
        ],
        "subtotal": money(bill.subtotal),
        "tax": money(bill.tax),
        "total": money(bill.total),
        "amount_paid": money(bill.amount_paid),
        # A draft owes nothing yet (balance_due is 0), but its preview must show what the payer will be asked for.
        "balance_due": money(bill.total - bill.amount_paid if bill.status == Bill.Status.DRAFT else bill.balance_due),
    }


def bill_document_html(
    *, document: BillDocument, request=None, extra: dict | None = None, language: str | None = None
) -> str:
    """The bill as one self-contained HTML page (styles inline, pictures as inline SVG or data), in `language`: the
    one the payer chose on a page, the account's (the default) in the stored PDF."""
    language = language or document.language
    with translation.override(language):
        context = _context(document, language) | (extra or {})
        return render_to_string(BILL_DOCUMENT_TEMPLATE, context, request=request)


def _local_only_fetcher():
    from weasyprint.urls import URLFetcher

    # The document needs nothing from outside. Refusing every scheme but data: means neither a biller's text nor a
    # future template change can make rendering call out to the network or read local files.
    return URLFetcher(allowed_protocols=("data",), fail_on_errors=False)


def pdf_from_html(html: str) -> bytes:
    """The one call into WeasyPrint (tests count renders here)."""
    # Imported here, not at the top: importing WeasyPrint parses its stylesheets and logs it, which every process that
    # loads the URLconf (web, worker, each manage.py command) would otherwise pay for without rendering anything.
    from weasyprint import HTML

    return HTML(string=html, base_url=None, url_fetcher=_local_only_fetcher()).write_pdf()


def bill_pdf_ensure(*, bill: Bill, actor=None) -> FieldFile:
    """The bill's PDF, rendered only when the stored one no longer matches what the bill shows.

    Rendering takes a moment, so it happens outside any lock; only the swap of the stored file is atomic, under the
    bill's row lock. If another worker stored the same version meanwhile, ours is dropped instead of saved. The file
    it replaces is deleted after commit, so no old versions pile up.
    """
    document = bill_document_get(bill=bill)
    fingerprint = bill_fingerprint(document)
    current = document.bill.pdf
    if document.bill.pdf_fingerprint == fingerprint and current and current.storage.exists(current.name):
        return current

    data = pdf_from_html(bill_document_html(document=document))

    with transaction.atomic():
        locked = Bill.objects.select_for_update().only("pk", "pdf", "pdf_fingerprint").get(pk=document.bill.pk)
        if locked.pdf_fingerprint == fingerprint and locked.pdf and locked.pdf.storage.exists(locked.pdf.name):
            return locked.pdf
        storage = locked.pdf.storage
        name = locked.pdf.field.generate_filename(locked, f"bill-{locked.pk}-{fingerprint[:16]}.pdf")
        new_name = storage.save(name, ContentFile(data))
        try:
            Bill.objects.filter(pk=locked.pk).update(pdf=new_name, pdf_fingerprint=fingerprint)
            event_record(
                kind=BillingEvent.Kind.PDF_RENDERED,
                bill=document.bill,
                to_status=document.bill.status,
                amount=document.bill.balance_due,
                currency=document.bill.currency,
                message=fingerprint[:16],
                actor=actor,
            )
        except Exception:
            storage.delete(new_name)
            raise
        old_name = locked.pdf.name
        if old_name and old_name != new_name:
            transaction.on_commit(lambda: storage.delete(old_name))

    document.bill.pdf = new_name
    document.bill.pdf_fingerprint = fingerprint
    return document.bill.pdf


def bill_pdf_response(*, bill: Bill, actor=None) -> FileResponse:
    """The bill's stored PDF (rendered first if needed) as a private download. Callers check access first."""
    pdf = bill_pdf_ensure(bill=bill, actor=actor)
    response = FileResponse(
        pdf.open("rb"),
        as_attachment=True,
        filename=get_valid_filename(f"bill-{bill.number}.pdf"),
        content_type="application/pdf",
    )
    response["Cache-Control"] = "private, no-store"
    return response
