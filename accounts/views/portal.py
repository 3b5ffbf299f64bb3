"""The signed-in payer's portal: the dashboard, one account's bills, payments and notice choices, "pay now", and a
bill's page and PDF.

Every page needs a login with a verified e-mail address. A bill or an account that is not linked to the login answers
404, exactly like one that does not exist, so nobody can probe for other people's bills by number.
"""

from allauth.account.decorators import verified_email_required
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing.autopay.selectors import enrollment_statuses
from billing.bills.documents import bill_document_get, bill_document_html, bill_pdf_response
from billing.bills.paylinks import bill_pay_path
from billing.clock import biller_today
from billing.enrolment.paperless import paperless_consent_text
from billing.pagecache import page_cached
from billing.payments import lookup
from billing.plans.selectors import plans_by_account, plans_offered

from .. import selectors, services
from ..forms import PaperlessForm
from .common import linked_or_404

BILLS_PER_PAGE = 12
PAYMENTS_PER_PAGE = 12


def _private(response):
    response["Cache-Control"] = "private, no-store"
    return response


@never_cache
@require_GET
@page_cached()  # outside the sign-in check: the user's row and verified address are in the page's digest
@verified_email_required
def dashboard(request):
    summaries = selectors.dashboard_accounts(user=request.user)
    today = biller_today(summaries[0].account.biller) if summaries else None
    # Autopay, paperless and the next autopay charge of every account: a fixed number of queries, not one per card.
    statuses = enrollment_statuses(account_ids=[s.account.pk for s in summaries], today=today)
    # Payment plans: the current one per account, and "Pay over time" where the biller lets payers set one up.
    plans = plans_by_account(account_ids=[s.account.pk for s in summaries])
    offered = plans_offered(billers={s.account.biller_id: s.account.biller for s in summaries}.values())
    for summary in summaries:
        summary.enrollment = statuses[summary.account.pk]
        summary.plan = plans.get(summary.account.pk)
        summary.plan_offered = summary.account.biller_id in offered and summary.balance > 0
    return render(request, "accounts/dashboard.html", {"summaries": summaries, "today": today})


@never_cache
@require_GET
@verified_email_required
def account_detail(request, account_id: int):
    link = linked_or_404(request, account_id)
    account = link.customer_account
    bills = Paginator(selectors.account_bills(account=account), BILLS_PER_PAGE).get_page(request.GET.get("page"))
    payments = Paginator(selectors.account_payments(account=account), PAYMENTS_PER_PAGE).get_page(
        request.GET.get("payments")
    )
    today = biller_today(account.biller)
    summary = selectors.account_summary(link=link)
    summary.enrollment = enrollment_statuses(account_ids=[account.pk], today=today)[account.pk]
    paperless = summary.enrollment.paperless
    context = {
        "summary": summary,
        "account": account,
        "bills": bills,
        "payments": payments,
        "today": today,
        "paperless_form": PaperlessForm(
            initial={"paperless": paperless is not None, "email": paperless.email if paperless else request.user.email}
        ),
        "paperless_consent": paperless_consent_text(account=account),
    }
    return render(request, "accounts/account_detail.html", context)


@never_cache
@require_http_methods(["GET", "POST"])
@verified_email_required
def notice_choices(request, account_id: int):
    """Which notices this account gets, on which channel: one tick per kind and channel the biller sends."""
    link = linked_or_404(request, account_id)
    account = link.customer_account
    if request.method == "POST":
        ticked = {tuple(value.split(":", 1)) for value in request.POST.getlist("notice") if ":" in value}
        services.notice_choices_save(user=request.user, account=account, enabled=ticked)
        messages.success(request, _("Your notice choices are saved."))
        return redirect("accounts:notices", account_id=account.pk)
    grid, facts = selectors.notice_choices(account=account)
    channels = sorted({(c.channel, c.channel_label) for c in grid}, key=lambda pair: pair[0])
    rows = {}
    for choice in grid:
        rows.setdefault((choice.kind, choice.kind_label), []).append(choice)
    context = {"account": account, "rows": rows, "channels": channels, "facts": facts}
    return render(request, "accounts/notices.html", context)

@never_cache
@require_POST
@verified_email_required
def account_pay(request, account_id: int):
    """"Pay now": grant this session the account's payment screen, as a guest lookup or a pay link would."""
    link = linked_or_404(request, account_id)
    lookup.grant_store(request, account=link.customer_account)
    return redirect("billing:pay_account")


def _payer_bill_or_404(request, bill_id: int):
    bill = selectors.payer_bill(user=request.user, bill_id=bill_id)
    if bill is None:
        raise Http404
    return bill


@require_GET
@verified_email_required
def bill_view(request, bill_id: int):
    bill = _payer_bill_or_404(request, bill_id)
    document = bill_document_get(bill=bill)
    toolbar = {
        "pdf_url": reverse("accounts:bill_pdf", args=[bill.pk]),
        "back_url": reverse("accounts:account", args=[bill.account_id]),
        "pay_url": bill_pay_path(bill),
    }
    html = bill_document_html(document=document, request=request, extra={"toolbar": toolbar}, language=get_language())
    return _private(HttpResponse(html))


@require_GET
@verified_email_required
def bill_pdf(request, bill_id: int):
    return bill_pdf_response(bill=_payer_bill_or_404(request, bill_id), actor=request.user)
