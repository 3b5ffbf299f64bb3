"""Payer pages: home, guest lookup, pay links and the payment screen. Views parse input and call one service."""

from babel.numbers import format_percent as babel_percent
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language, gettext_noop, ngettext, to_locale
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from billing.access import payer_access
from billing.bills import paylinks
from billing.clock import biller_today
from billing.bills.selectors import account_balance, bank_transfer_details, biller_cached, biller_for_site
from billing.autopay.selectors import autopay_on
from billing.enrolment.forms import GuestEnrollmentForm
from billing.enrolment.paperless import paperless_current, paperless_on
from billing.forms import email_masked
from billing.enrolment.guest import guest_enrollment_record
from billing.methods.selectors import user_payment_methods
from billing.methods.services import SAVED_CARD_NEEDS_LOOKUP, payment_method_may_pay
from billing.payments import lookup, receipts
from billing.payments.bank_debits import bank_debit_pay
from billing.payments.bank_forms import BankDebitForm
from billing.payments.core import payment_record_result
from billing.payments.forms import LookupForm, PaymentForm
from billing.payments.gateway import GatewayError, MandateAcceptance
from billing.payments.mandates import bank_debit_available
from billing.payments.online import QUOTE_BILLS, payment_confirm, payment_quote, payment_start

from .errors import ApplicationError
from .pagecache import page_cached
from .models import CustomerAccount, Payment, PaymentMethod
from .money import format_money, money_formatter


def _format_percent(basis_points: int, *, locale: str) -> str:
    """250 → "2.5%" in the payer's language."""
    try:
        return babel_percent(basis_points / 10_000, format="#,##0.##%", locale=locale)
    except Exception:  # an unknown locale must never break a page
        return babel_percent(basis_points / 10_000, format="#,##0.##%", locale="en")


@require_GET
@page_cached()
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
@page_cached()  # the empty form; an answer to a POST is never cached
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
@page_cached(lookup.granted_account_id, query_strings=("", "bills=all"))  # a guest's page: the account granted
def pay_account(request):
    """The payment screen for the one account this session was granted by a lookup or a pay link."""
    account = _granted_account(request, for_display=True)
    if account is None:
        messages.info(request, _("Please find your account first. For your security, access to it times out."))
        return redirect("billing:pay")
    biller = account.biller
    today = biller_today(biller)

    all_bills = request.GET.get("bills") == "all"  # "and N more": the payer asked to see every open bill
    try:
        full = payment_quote(account=account, bills_shown=None if all_bills else QUOTE_BILLS)
    except ApplicationError as error:
        full, nothing_due = None, error.message
    else:
        nothing_due = ""

    form = _payment_form(request, account, request.POST or None)
    # The screen always shows what will be charged: the full balance at first, then the payer's own choice (a
    # submit without JavaScript; pay.js asks pay_quote for the same figures in place).
    quote = full
    if full is not None and request.method == "POST":
        form.is_valid()
        quote = _quote_for(account=account, form=form)

    currency = biller.currency
    money = money_formatter(currency, to_locale(get_language() or "en"))  # one formatter for every amount
    owed = full.owed if full else account_balance(account=account)  # above the card limit there is no full quote
    bills = [
        {"number": b.number, "due_date": b.due_date, "balance": money(b.balance_due), "overdue": b.is_overdue(today)}
        for b in (full.bills if full else ())
    ]
    context = {
        "biller": biller,
        "account": account,
        "holder_masked": _masked_name(account.holder_name),
        "bills": bills,
        "bills_more": full.open_bills - len(bills) if full else 0,
        "nothing_due": nothing_due,
        "form": form,
        "balance": money(full.owed) if full else "",
        "full_fee": money(full.fee) if full and full.fee else "",
        "fee_rule": _fee_rule(biller, money),
        "limits": _limits(biller, full, money) if full else "",
        "quote": _quote_rows(quote, money) if quote else None,
        "quote_total": money(quote.total) if quote else "",
        "pay_label": _pay_label(money(quote.total)) if quote else "",
        "pay_config": _pay_config(quote) if full is not None else None,
        "stripe_js_url": settings.STRIPE_JS_URL,
        "saved_cards": _saved_cards(request, account),
        "bank_transfer": bank_transfer_details(account=account),
        "credit": money(account.credit_balance) if account.credit_balance else "",
        "above_card_limit": bool(biller.maximum_payment and owed > biller.maximum_payment),
        "card_limit": money(biller.maximum_payment) if biller.maximum_payment else "",
        "bank_form": BankDebitForm(biller=biller) if bank_debit_available(biller) else None,
    }
    return render(request, "billing/pay_account.html", context)


def _payer_of(request, account: CustomerAccount) -> bool:
    """A signed-in payer who linked this account (paying from the dashboard), not a guest."""
    return request.user.is_authenticated and payer_access().linked(user=request.user, account=account)


def _payment_form(request, account: CustomerAccount, data) -> PaymentForm:
    """The pay screen's form for this payer: the receipt address pre-filled (their own when signed in and linked,
    else the account's, masked), and paperless or autopay offered only when the account does not have it yet
    (`account` as `_granted_account` reads it). The same form parses the quote and the start, so a choice that is
    not offered is never read."""
    payer = _payer_of(request, account)
    return PaymentForm(
        data,
        biller=account.biller,
        payer_email=request.user.email if payer else "",
        email_on_file=account.email or "",
        offer_paperless=not account.paperless_is_on,  # annotated by `_granted_account`
        offer_autopay=not account.autopay_is_on,
    )


def _email_shown(request, account: CustomerAccount, address: str) -> str:
    """An address as this viewer may see it: the account's own address is masked for anyone but its linked payer
    (a pay link or a receipt link may have been forwarded); an address the payer typed is theirs to see."""
    if address and account.email and address.lower() == account.email.lower() and not _payer_of(request, account):
        return email_masked(address)
    return address


def _saved_cards(request, account: CustomerAccount) -> list:
    if not (request.user.is_authenticated and payment_method_may_pay(user=request.user, account=account)):
        return []
    # Cards only: a saved bank account debits under its standing mandate (autopay), not from this screen.
    return list(user_payment_methods(user=request.user).filter(kind=PaymentMethod.Kind.CARD))


def _pay_config(quote) -> dict:
    """What pay.js needs, as inline JSON (json_script: data, not code, so the CSP allows it). No secrets: the
    client secret of an intent is only ever sent in answer to the payer's own "Pay" POST."""
    return {
        "publishableKey": settings.STRIPE_PUBLISHABLE_KEY,
        "startUrl": reverse("billing:pay_start"),
        "confirmUrl": reverse("billing:pay_confirm"),
        "returnUrl": reverse("billing:pay_return"),
        "quoteUrl": reverse("billing:pay_quote"),
        "quoteTotal": quote.total if quote else None,
        "messages": {
            "working": _("Processing your payment. Please don't close this page."),
            "authenticating": _("Your bank wants to confirm it's you. Follow the steps in the window that opens."),
            "paid": _("Payment received. Opening your receipt…"),
            "checkCard": _("Please check the card details and try again."),
            "network": _(
                "We couldn't reach our server. Check your connection and try again; you will not be charged twice."
            ),
            "changed": _("The total changed. Check the new total above, then press Pay again."),
            "unavailable": _("Card payment is not available right now. Nothing was charged. Please try again later."),
            "reload": _("Reload the page"),
        },
    }


# --- Paying: start, confirm, return -----------------------------------------------------------------------------------


def _json_error(message: str, *, status: int, **extra) -> JsonResponse:
    return JsonResponse({"error": str(message), **extra}, status=status)


def _granted_account(request, *, for_display: bool = False) -> CustomerAccount | None:
    """The account this session may pay, in one query with whether paperless and autopay are on (`_payment_form`
    offers them only when they are not), and its biller with the payment plan rules ("Pay over time",
    billing/templatetags/billing_plans.py). `for_display`: the biller from the shared cache, for what only shows
    figures (the pay screen and its in-place total); starting and confirming a payment read it from the database."""
    account_id = lookup.granted_account_id(request)
    if not account_id:
        return None
    accounts = CustomerAccount.objects.annotate(paperless_is_on=paperless_on(), autopay_is_on=autopay_on())
    if not for_display:
        return accounts.select_related("biller", "biller__plan_rules").filter(pk=account_id).first()
    account = accounts.filter(pk=account_id).first()
    if account is not None:
        account.biller = biller_cached(account.biller_id)
    return account


_SESSION_EXPIRED = gettext_noop(
    "For your security, your session timed out and nothing was charged. Please find your account again."
)


# The fields whose errors the in-place total reports; the rest (the e-mail) are checked when the payer pays.
_QUOTE_FIELDS = ("amount_choice", "other_amount", "tip_percent")


@never_cache
@require_http_methods(["POST"])
def pay_quote(request):
    """The total for the payer's current choices, for pay.js to show in place. Only figures: nothing is started,
    and pay_start recomputes all of them again."""
    account = _granted_account(request, for_display=True)
    if account is None:
        return _json_error(_(_SESSION_EXPIRED), status=403, redirect=reverse("billing:pay"))
    form = _payment_form(request, account, request.POST)
    form.is_valid()
    quote = _quote_for(account=account, form=form)
    if quote is None:
        errors = {name: " ".join(form.errors[name]) for name in _QUOTE_FIELDS if name in form.errors}
        return JsonResponse({"errors": errors}, status=400)
    money = lambda minor: format_money(minor, quote.currency)  # noqa: E731
    return JsonResponse(
        {
            "total": quote.total,
            "totalDisplay": money(quote.total),
            "rows": _quote_rows(quote, money),
            "payLabel": _pay_label(money(quote.total)),
        }
    )


@never_cache
@require_http_methods(["POST"])
def pay_start(request):
    """The payer pressed Pay: re-read their choices, re-quote on the server and start (or reuse) the account's one
    online payment. Answers JSON with the intent's client secret and the total the server will charge. Any amount
    or total the browser sends beside the choices is ignored."""
    account = _granted_account(request)
    if account is None:
        return _json_error(_(_SESSION_EXPIRED), status=403, redirect=reverse("billing:pay"))
    form = _payment_form(request, account, request.POST)
    if not form.is_valid():
        errors = [str(e) for field_errors in form.errors.values() for e in field_errors]
        return _json_error(" ".join(errors), status=400, reload=True)
    data = form.cleaned_data
    try:
        payment, client_secret = payment_start(
            account=account,
            payer_email=data["receipt_email"],
            channel=Payment.Channel.PORTAL if _payer_of(request, account) else Payment.Channel.GUEST_WEB,
            amount=data["amount"],
            tip_percent=data.get("tip_percent") or None,
            save_card_requested=data.get("autopay", False),
            paperless_requested=data.get("paperless", False),
        )
    except ApplicationError as error:
        return _json_error(error.message, status=409)
    receipts.session_remember(request, payment)
    return JsonResponse(
        {
            "paymentIntent": payment.gateway_payment_id,
            "clientSecret": client_secret,
            "total": payment.total_charged,
            "totalDisplay": format_money(payment.total_charged, payment.currency),
        }
    )


@never_cache
@require_http_methods(["POST"])
def pay_confirm(request):
    """Confirm the payment with the payment method id stripe.js made from the card (never the card itself), or
    with no id, report where it stands after 3-D Secure. Answers JSON: status, and a message for a decline."""
    account_id = lookup.granted_account_id(request)
    if account_id is None:
        return _json_error(_(_SESSION_EXPIRED), status=403, redirect=reverse("billing:pay"))
    intent_id = request.POST.get("payment_intent", "")
    method_id = request.POST.get("payment_method") or None
    customer_id = None
    if request.POST.get("saved_card"):
        # Only a card saved by this login, identified by our own row: a guest (or another login) cannot name one.
        saved = (
            user_payment_methods(user=request.user)
            .filter(pk=request.POST["saved_card"], kind=PaymentMethod.Kind.CARD)
            .first()
            if request.user.is_authenticated and request.POST["saved_card"].isdigit()
            else None
        )
        if saved is None:
            return _json_error(_("That saved card is not available. Please choose another card."), status=409)
        # A saved card pays only accounts its login reached through the lookup or a proven link.
        if not payment_method_may_pay(user=request.user, account=account_id):
            return _json_error(str(SAVED_CARD_NEEDS_LOOKUP), status=409)
        method_id, customer_id = saved.gateway_payment_method_id, saved.gateway_customer_id
    try:
        outcome = payment_confirm(
            account_id=account_id, payment_intent_id=intent_id, payment_method_id=method_id, customer_id=customer_id
        )
    except ApplicationError as error:
        return _json_error(error.message, status=409)
    answer = {"status": outcome.status, "message": outcome.payer_message}
    if outcome.status == "requires_action":
        answer["clientSecret"] = outcome.client_secret
    if outcome.status in ("succeeded", "processing"):
        answer["next"] = f"{reverse('billing:pay_return')}?payment_intent={intent_id}"
    return JsonResponse(answer)


@never_cache
@require_GET
def pay_return(request):
    """Where the page goes after paying (and where Stripe sends a payer back from a redirect-based check): record
    the result, the same way the webhook does, then show the receipt. Both paths meet in payment_record_result, so a
    payment is recorded once whichever comes first."""
    intent_id = request.GET.get("payment_intent", "")
    payment = Payment.objects.filter(gateway_payment_id=intent_id).first() if intent_id else None
    if payment is None or not receipts.session_may_see(request, payment.confirmation_number):
        raise Http404("no such payment in this session")
    try:
        payment_record_result(payment_intent_id=intent_id, source="return")
    except GatewayError:
        pass  # the webhook or the janitor will record it; the receipt page says it is being confirmed
    payment.refresh_from_db()
    if payment.status == Payment.Status.FAILED:
        if payment.is_bank_debit:
            messages.error(request, _("Your bank did not accept the debit. Nothing was debited. Please pay another way."))
        else:
            messages.error(request, _("Your card was declined. Nothing was charged. Please try another card."))
        return redirect("billing:pay_account")
    return redirect("billing:pay_receipt", confirmation_number=payment.confirmation_number)


# --- Paying by bank debit (SEPA) --------------------------------------------------------------------------------------


def mandate_acceptance_of(request) -> MandateAcceptance:
    """When and from where the payer accepted a mandate: now, this request's address and browser."""
    return MandateAcceptance(
        accepted_at=int(timezone.now().timestamp()),
        ip=request.META.get("REMOTE_ADDR", ""),
        user_agent=request.headers.get("User-Agent", "")[:500],
    )


@never_cache
@require_http_methods(["POST"])
def pay_bank(request):
    """The payer chose "Pay from a bank account", typed the IBAN and accepted the mandate: check it all, then debit
    once (billing/payments/bank_debits.py). pay_bank.js posts here and reads JSON; without JavaScript the form's bank
    button posts here and gets the receipt (or the pay screen with the message)."""
    wants_json = request.headers.get("Accept", "").startswith("application/json")
    account = _granted_account(request)
    if account is None:
        if wants_json:
            return _json_error(_(_SESSION_EXPIRED), status=403, redirect=reverse("billing:pay"))
        messages.info(request, _(_SESSION_EXPIRED))
        return redirect("billing:pay")

    def refuse(message: str, *, status: int, errors: dict | None = None):
        if wants_json:
            return _json_error(message, status=status, errors=errors or {})
        messages.error(request, message)
        return redirect("billing:pay_account")

    form = _payment_form(request, account, request.POST)
    bank_form = BankDebitForm(request.POST, biller=account.biller)
    form_ok, bank_ok = form.is_valid(), bank_form.is_valid()
    if not (form_ok and bank_ok):
        errors = {name: " ".join(str(e) for e in errs) for f in (form, bank_form) for name, errs in f.errors.items()}
        return refuse(" ".join(errors.values()), status=400, errors=errors)
    data, bank = form.cleaned_data, bank_form.cleaned_data
    try:
        outcome = bank_debit_pay(
            account=account, payer_email=data["receipt_email"],
            channel=Payment.Channel.PORTAL if _payer_of(request, account) else Payment.Channel.GUEST_WEB,
            amount=data["amount"], tip_percent=data.get("tip_percent") or None,
            paperless_requested=data.get("paperless", False), kind="sepa_debit", account_number=bank["iban"],
            holder_name=bank["holder_name"], shown_text_digest=bank.get("mandate_digest", ""),
            acceptance=mandate_acceptance_of(request), user=request.user,
        )  # fmt: skip
    except ApplicationError as error:
        return refuse(error.message, status=409)
    receipts.session_remember(request, outcome.payment)
    if outcome.status not in ("succeeded", "processing"):
        return refuse(outcome.payer_message or _("Your bank did not accept the debit. Nothing was debited."), status=409)
    next_url = f"{reverse('billing:pay_return')}?payment_intent={outcome.payment.gateway_payment_id}"
    if wants_json:
        return JsonResponse({"status": outcome.status, "next": next_url})
    return redirect(next_url)


# --- The receipt ------------------------------------------------------------------------------------------------------


def _receipt_payment(request, confirmation_number: str) -> Payment:
    """The payment, if this session made it, or if it is on an account linked to the signed-in payer (any channel:
    the dashboard lists them all). A valid signed key from the receipt e-mail lets this session in too. Anything
    else is a 404, the same for a number that exists and one that does not."""
    key = request.GET.get("key")
    if key and receipts.receipt_token_valid(key, confirmation_number=confirmation_number):
        payment = Payment.objects.filter(confirmation_number=confirmation_number).first()
        if payment is not None:
            receipts.session_remember(request, payment)
    payment = (
        Payment.objects.select_related("account", "biller").filter(confirmation_number=confirmation_number).first()
    )
    if payment is None:
        raise Http404("no such payment")
    if receipts.session_may_see(request, confirmation_number) and payment.channel in Payment.ONLINE_CHANNELS:
        return payment
    if _payer_of(request, payment.account):
        return payment
    raise Http404("not this session's receipt")


@never_cache
@require_GET
def pay_receipt(request, confirmation_number: str):
    payment = _receipt_payment(request, confirmation_number)
    if request.GET.get("key"):
        return redirect("billing:pay_receipt", confirmation_number=confirmation_number)  # keep the key out of history
    context = receipts.receipt_context(payment)
    enrollment = getattr(payment, "enrollment_request", None) if context["succeeded"] else None
    offer = context["succeeded"] and not (enrollment and enrollment.paperless)
    offer = offer and paperless_current(account=payment.account) is None  # already paperless: nothing to offer
    context |= _receipt_emails(request, payment, enrollment) | {
        "enrollment": enrollment,
        "enrol_form": _enrol_form(request, payment) if offer else None,
        "in_flight": payment.status in Payment.IN_FLIGHT_STATUSES,
    }
    return render(request, "billing/receipt.html", context)


def _receipt_emails(request, payment: Payment, enrollment) -> dict:
    return {
        "receipt_sent_to": _email_shown(request, payment.account, payment.payer_email),
        "enrollment_email": _email_shown(request, payment.account, enrollment.email) if enrollment else "",
    }


def _enrol_form(request, payment: Payment, data=None) -> GuestEnrollmentForm:
    account = payment.account
    shown = _email_shown(request, account, payment.payer_email)
    if shown and shown == payment.payer_email:
        return GuestEnrollmentForm(data, email=payment.payer_email)
    return GuestEnrollmentForm(data, email_on_file=account.email or "")


@never_cache
@require_GET
def pay_receipt_pdf(request, confirmation_number: str):
    payment = _receipt_payment(request, confirmation_number)
    if payment.status != Payment.Status.SUCCEEDED:
        raise Http404("no receipt for an unfinished payment")
    response = HttpResponse(receipts.receipt_pdf(payment, language=get_language()), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="receipt-{payment.confirmation_number}.pdf"'
    return response


@never_cache
@require_http_methods(["POST"])
def pay_receipt_enrol(request, confirmation_number: str):
    """The enrolment offer on the receipt: paperless bills with one tick and an e-mail address."""
    payment = _receipt_payment(request, confirmation_number)
    if payment.status != Payment.Status.SUCCEEDED:
        raise Http404("no offer for an unfinished payment")
    form = _enrol_form(request, payment, request.POST)
    if not form.is_valid():
        enrollment = getattr(payment, "enrollment_request", None)
        context = receipts.receipt_context(payment) | _receipt_emails(request, payment, enrollment) | {
            "enrollment": enrollment,
            "enrol_form": form,
            "in_flight": False,
        }
        return render(request, "billing/receipt.html", context, status=400)
    guest_enrollment_record(payment=payment, email=form.cleaned_data["email"], paperless=True)
    messages.success(
        request,
        _("Thank you. We'll e-mail you a link to confirm paperless bills. Nothing changes until you confirm."),
    )
    return redirect("billing:pay_receipt", confirmation_number=confirmation_number)


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


def _pay_label(total: str) -> str:
    return _("Pay %(total)s") % {"total": total}


def _quote_for(*, account: CustomerAccount, form: PaymentForm):
    """Recompute the quote from the payer's choices (after form.is_valid()); a broken rule becomes an error on the
    field it concerns. None when the amount or the tip cannot be quoted; an error elsewhere (the e-mail) does not
    stop the quote, so the payer sees every error and the total at once."""
    if any(name in form.errors for name in _QUOTE_FIELDS) or "amount" not in form.cleaned_data:
        return None
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
