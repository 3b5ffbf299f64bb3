"""Payer pages: home, guest lookup, pay links and the payment screen. Views parse input and call one service."""

from babel.numbers import format_percent as babel_percent
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import get_language, gettext_noop, ngettext, to_locale
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from . import lookup, paylinks
from .errors import ApplicationError
from .forms import LookupForm, PaymentForm
from .models import CustomerAccount
from .money import format_money
from .payments import payment_quote
from .selectors import biller_for_site


def _format_percent(basis_points: int, *, locale: str) -> str:
    """250 → "2.5%" in the payer's language."""
    try:
        return babel_percent(basis_points / 10_000, format="#,##0.##%", locale=locale)
    except Exception:  # an unknown locale must never break a page
        return babel_percent(basis_points / 10_000, format="#,##0.##%", locale="en")


@require_GET
def home(request):
    return render(request, "billing/home.html")


NOT_FOUND_MESSAGE = gettext_noop("We couldn't find an account with those details. Check your bill and try again.")


def _lookup_page(request, *, biller, form, error: str = "", status: int = 200):
    return render(
        request, "billing/lookup.html", {"biller": biller, "form": form, "lookup_error": error}, status=status
    )


def _locked_message(locked: lookup.LookupLocked) -> str:
    return ngettext(
        "Too many attempts to find an account. For your security, please wait %(minutes)d minute and try again.",
        "Too many attempts to find an account. For your security, please wait %(minutes)d minutes and try again.",
        locked.minutes,
    ) % {"minutes": locked.minutes}


@never_cache
@require_http_methods(["GET", "POST"])
def pay_lookup(request):
    """Find an account by its number and the biller's second factor, then open its payment screen."""
    biller = biller_for_site()
    if biller is None:
        return _lookup_page(request, biller=None, form=None)
    if request.method != "POST":
        return _lookup_page(request, biller=biller, form=LookupForm(biller=biller))
    form = LookupForm(request.POST, biller=biller)
    if not form.is_valid():
        return _lookup_page(request, biller=biller, form=form)
    data = form.cleaned_data
    try:
        account = lookup.account_lookup(
            biller=biller,
            account_number=data["account_number"],
            factor=lookup.LookupFactor(
                postal_code=data.get("postal_code"), last_bill_amount=data.get("last_bill_amount")
            ),
            client_ip=request.META.get("REMOTE_ADDR", ""),
        )
    except lookup.LookupLocked as locked:
        return _lookup_page(
            request,
            biller=biller,
            form=LookupForm(biller=biller).point_to_alert("lookup-error"),
            error=_locked_message(locked),
            status=429,
        )
    except lookup.LookupFailed:
        # A fresh, empty form: echoing the typed number back would make a miss and a wrong factor differ.
        form = LookupForm(biller=biller).point_to_alert("lookup-error")
        return _lookup_page(request, biller=biller, form=form, error=_(NOT_FOUND_MESSAGE))
    lookup.grant_store(request, account=account)
    return redirect("billing:pay_account")


@never_cache
@require_GET
def pay_link(request, token: str):
    """The link in an e-bill: opens that bill's account payment screen with no login in between."""
    try:
        bill = paylinks.bill_from_pay_token(token)
    except paylinks.PayLinkError as error:
        return _pay_link_problem(request, error)
    lookup.grant_store(request, account=bill.account)
    return redirect("billing:pay_account")


def _pay_link_problem(request, error: paylinks.PayLinkError):
    biller = biller_for_site()
    if isinstance(error, paylinks.PayLinkExpired):
        status, title = 410, _("This payment link has expired")
        explanation = _(
            "Payment links in bills work for a limited time after the due date. You can still pay: find your "
            "account below with the details on your bill."
        )
    elif isinstance(error, paylinks.PayLinkBillVoid):
        status, title = 410, _("This bill has been cancelled")
        explanation = _(
            "The bill this link was for is no longer payable. If you have a newer bill, use its link, or find your "
            "account below to see what you owe."
        )
    else:
        status, title = 404, _("This payment link doesn't work")
        explanation = _(
            "The link may have been cut short or changed when it was copied. Try opening it again from your e-mail, "
            "or find your account below."
        )
    form = LookupForm(biller=biller) if biller else None
    context = {"biller": biller, "form": form, "problem_title": title, "problem_explanation": explanation}
    return render(request, "billing/pay_link_problem.html", context, status=status)


def _masked_name(name: str) -> str:
    """ "Jane Smith" → "J*** S****": enough for the payer to recognise, too little for a stranger to learn."""
    return " ".join(word[0] + "*" * (len(word) - 1) for word in name.split())


@never_cache
@require_http_methods(["GET", "POST"])
def pay_account(request):
    """The payment screen for the one account this session was granted by a lookup or a pay link."""
    account_id = lookup.granted_account_id(request)
    account = (
        CustomerAccount.objects.select_related("biller").filter(pk=account_id).first() if account_id else None
    )
    if account is None:
        messages.info(request, _("Please find your account first. For your security, access to it times out."))
        return redirect("billing:pay")
    biller = account.biller
    today = paylinks.biller_today(biller)

    try:
        full = payment_quote(account=account)
    except ApplicationError as error:
        full, nothing_due = None, error.message
    else:
        nothing_due = ""

    form = PaymentForm(request.POST or None, biller=biller)
    quote = None
    if full is not None and request.method == "POST":
        valid = form.is_valid()
        if "amount" in form.cleaned_data:  # check the amount now even if, say, the e-mail is missing: all errors at once
            quote = _quote_for(account=account, form=form)
        if not valid:
            quote = None

    currency = biller.currency
    money = lambda minor: format_money(minor, currency)  # noqa: E731
    bills = [
        {"number": b.number, "due_date": b.due_date, "balance": money(b.balance_due), "overdue": b.is_overdue(today)}
        for b in (full.bills if full else ())
    ]
    context = {
        "biller": biller,
        "account": account,
        "holder_masked": _masked_name(account.holder_name),
        "bills": bills,
        "nothing_due": nothing_due,
        "form": form,
        "balance": money(full.owed) if full else "",
        "full_fee": money(full.fee) if full and full.fee else "",
        "fee_rule": _fee_rule(biller, money),
        "limits": _limits(biller, full, money) if full else "",
        "quote": _quote_rows(quote, money) if quote else None,
        "quote_total": money(quote.total) if quote else "",
    }
    return render(request, "billing/pay_account.html", context)


def _fee_rule(biller, money) -> str:
    fixed, basis_points = biller.convenience_fee_fixed, biller.convenience_fee_basis_points
    percent = _format_percent(basis_points, locale=to_locale(get_language() or "en"))
    if fixed and basis_points:
        return _("A convenience fee of %(fixed)s plus %(percent)s of the amount is added to online payments.") % {
            "fixed": money(fixed),
            "percent": percent,
        }
    if fixed:
        return _("A convenience fee of %(fixed)s is added to online payments.") % {"fixed": money(fixed)}
    if basis_points:
        return _("A convenience fee of %(percent)s of the amount is added to online payments.") % {"percent": percent}
    return _("There is no fee for paying online.")


def _limits(biller, full, money) -> str:
    if full.owed < biller.minimum_payment:
        return _("This balance can only be paid in full.")
    most = min(full.owed, biller.maximum_payment or full.owed)
    return _("Between %(least)s and %(most)s.") % {"least": money(biller.minimum_payment), "most": money(most)}


def _quote_rows(quote, money) -> list[tuple[str, str]]:
    rows = [(_("Payment towards your bills"), money(quote.amount))]
    rows.append((_("Convenience fee"), money(quote.fee)))
    if quote.tip:
        rows.append((_("Tip"), money(quote.tip)))
    return rows


def _quote_for(*, account: CustomerAccount, form: PaymentForm):
    """Recompute the quote from the payer's choices; a broken rule becomes an error on the field it concerns."""
    data = form.cleaned_data
    amount_field = "other_amount" if data["amount"] is not None else None
    try:
        quote = payment_quote(account=account, amount=data["amount"])
    except ApplicationError as error:
        form.add_error(amount_field, error.message)
        form.link_errors()
        return None
    if data.get("tip_percent"):
        try:
            quote = payment_quote(account=account, amount=quote.amount, tip_percent=data["tip_percent"])
        except ApplicationError as error:
            form.add_error("tip_percent", error.message)
            form.link_errors()
            return None
    return quote
