"""Payment settings: saved cards, autopay, paperless.

Changing any of them needs a recent sign-in (a fresh sign-in, by password or e-mailed code, or allauth's
reauthentication; common.recent_sign_in_required): a borrowed or stolen session cannot add a card, point autopay
at one, or send the bills to another address. allauth keeps the POST while the payer confirms it is them, then
replays it.
"""

from allauth.account.decorators import verified_email_required
from django.conf import settings
from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing.autopay import enrolment as autopay_enrolment
from billing.autopay.selectors import autopay_current, autopay_upcoming
from billing.clock import biller_today
from billing.enrolment.paperless import paperless_cancel, paperless_consent_text, paperless_enroll
from billing.errors import ApplicationError
from billing.methods import services as method_services
from billing.methods.selectors import user_payment_methods
from billing.models import PaperlessEnrollment
from billing.payments.mandates import bank_debit_available
from billing.money import format_money, from_minor

from .. import selectors
from ..forms import AutopayForm, PaperlessForm
from .common import client_ip, linked_or_404, recent_sign_in_required


def _own_method_or_404(request, method_id: int):
    method = user_payment_methods(user=request.user).filter(pk=method_id).first()
    if method is None:
        raise Http404
    return method


def _next_autopay_account(request) -> int | None:
    """The account whose autopay form sent the payer to add a card: they go back there with the new card chosen."""
    value = request.POST.get("for_account") or request.GET.get("for_account") or ""
    if value.isdigit() and selectors.user_account_link(user=request.user, account_id=int(value)):
        return int(value)
    return None


@never_cache
@require_GET
@verified_email_required
def payment_methods(request):
    methods = list(user_payment_methods(user=request.user))
    today = timezone.localdate()
    return render(
        request,
        "accounts/payment_methods.html",
        {"methods": methods, "today": today, "expired": {m.pk for m in methods if m.is_expired(today)}},
    )


@never_cache
@require_GET
@verified_email_required
@recent_sign_in_required
def payment_method_add(request):
    """The Card Element page. stripe.js confirms a SetupIntent in the browser; the card never reaches us."""
    for_account = _next_autopay_account(request)
    config = {
        "publishableKey": settings.STRIPE_PUBLISHABLE_KEY,
        "setupUrl": reverse("accounts:payment_method_setup"),
        "messages": {
            "working": _("Saving your card…"),
            "authenticating": _("Your bank wants to confirm it's you. Follow the steps in the window that opens."),
            "checkCard": _("Please check the card details and try again."),
            "network": _("We couldn't reach our server. Check your connection and try again."),
            "unavailable": _("Saving cards is not available right now. Please try again later."),
        },
    }
    context = {"card_config": config, "stripe_js_url": settings.STRIPE_JS_URL, "for_account": for_account}
    return render(request, "accounts/payment_method_add.html", context)


@never_cache
@require_POST
@verified_email_required
@recent_sign_in_required
def payment_method_setup(request):
    """JSON: a fresh SetupIntent's client secret for stripe.js."""
    try:
        client_secret = method_services.payment_method_setup_start(user=request.user)
    except ApplicationError as error:
        return JsonResponse({"error": error.message}, status=409)
    return JsonResponse({"clientSecret": client_secret})


@never_cache
@require_POST
@verified_email_required
@recent_sign_in_required
def payment_method_save(request):
    """stripe.js confirmed the SetupIntent; the page posts its id (never card data). The server checks and saves."""
    for_account = _next_autopay_account(request)
    try:
        method = method_services.payment_method_save_from_setup(
            user=request.user, setup_intent_id=request.POST.get("setup_intent", ""), ip=client_ip(request)
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        url = reverse("accounts:payment_method_add")
        return redirect(f"{url}?for_account={for_account}" if for_account else url)
    messages.success(request, _("Card saved: %(card)s.") % {"card": method.summary})
    if for_account:
        return redirect(f"{reverse('accounts:autopay', args=[for_account])}?card={method.pk}")
    return redirect("accounts:payment_methods")


def _method_action(request, method_id: int, action, done: str):
    method = _own_method_or_404(request, method_id)
    try:
        action(user=request.user, payment_method=method, ip=client_ip(request))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, done % {"card": method.summary})
    return redirect("accounts:payment_methods")


@never_cache
@require_POST
@verified_email_required
@recent_sign_in_required
def payment_method_default(request, method_id: int):
    return _method_action(
        request, method_id, method_services.payment_method_make_default, _("%(card)s is now your default card.")
    )


@never_cache
@require_POST
@verified_email_required
@recent_sign_in_required
def payment_method_backup(request, method_id: int):
    return _method_action(
        request, method_id, method_services.payment_method_make_backup, _("%(card)s is now your backup card.")
    )


@never_cache
@require_POST
@verified_email_required
@recent_sign_in_required
def payment_method_no_backup(request):
    method_services.payment_method_clear_backup(user=request.user, ip=client_ip(request))
    messages.success(request, _("You have no backup card now. If a charge on your default card fails, we will tell you."))
    return redirect("accounts:payment_methods")


@never_cache
@require_POST
@verified_email_required
@recent_sign_in_required
def payment_method_remove(request, method_id: int):
    return _method_action(request, method_id, method_services.payment_method_remove, _("%(card)s was removed."))


def _autopay_page(request, *, link, form, status: int = 200):
    account = link.customer_account
    current = autopay_current(account=account)
    today = biller_today(account.biller)
    context = {
        "account": account,
        "form": form,
        "current": current,
        "current_is_mine": current is not None and current.user_id == request.user.pk,
        "upcoming": autopay_upcoming(account=account, today=today),
        "max_display": format_money(current.max_amount, current.currency) if current and current.max_amount else "",
        "consent_text": autopay_enrolment.autopay_consent_text(account=account),
        "has_methods": bool(form.fields["payment_method"].choices),
        "bank_debit": bank_debit_available(account.biller),
    }
    return render(request, "accounts/autopay.html", context, status=status)


def _autopay_form(request, account, data=None):
    methods = list(user_payment_methods(user=request.user))
    today = timezone.localdate()
    usable = [m for m in methods if not m.is_expired(today)]
    initial = {}
    current = autopay_current(account=account)
    chosen = request.GET.get("card", "")
    if chosen.isdigit() and any(m.pk == int(chosen) for m in usable):
        initial["payment_method"] = int(chosen)
    elif current is not None and current.user_id == request.user.pk and current.payment_method in usable:
        initial["payment_method"] = current.payment_method_id
    elif usable:
        initial["payment_method"] = usable[0].pk  # the default card comes first
    if current is not None and current.user_id == request.user.pk:
        initial |= {"charge_rule": current.charge_rule, "days_before": current.days_before or 3}
        if current.max_amount:
            initial["max_amount"] = str(from_minor(current.max_amount, current.currency))
    return AutopayForm(data, methods=usable, currency=account.biller.currency, initial=initial)


@never_cache
@require_http_methods(["GET", "POST"])
@verified_email_required
@recent_sign_in_required(allow_get=True)
def autopay(request, account_id: int):
    """See autopay for an account; POST turns it on (or replaces the settings) with the mandate shown here."""
    link = linked_or_404(request, account_id)
    account = link.customer_account
    if request.method != "POST":
        return _autopay_page(request, link=link, form=_autopay_form(request, account))
    form = _autopay_form(request, account, data=request.POST)
    if not form.is_valid():
        return _autopay_page(request, link=link, form=form, status=400)
    data = form.cleaned_data
    method = user_payment_methods(user=request.user).filter(pk=data["payment_method"]).first()
    try:
        autopay_enrolment.autopay_enroll(
            account=account,
            user=request.user,
            payment_method=method,
            charge_rule=data["charge_rule"],
            days_before=data.get("days_before"),
            max_amount=data.get("max_amount"),
            consent_text=autopay_enrolment.autopay_consent_text(account=account),
            ip=client_ip(request),
            replace=request.POST.get("replace") == "1",
        )
    except ApplicationError as error:
        form.add_error(None, error.message)
        return _autopay_page(request, link=link, form=form, status=400)
    messages.success(request, _("Autopay is on for account %(number)s.") % {"number": account.account_number})
    return redirect("accounts:autopay", account_id=account.pk)


def _autopay_action(request, account_id: int, action, done: str):
    link = linked_or_404(request, account_id)
    current = autopay_current(account=link.customer_account)
    if current is None:
        raise Http404
    try:
        action(enrollment=current, user=request.user, ip=client_ip(request))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, done % {"number": link.customer_account.account_number})
    return redirect("accounts:autopay", account_id=account_id)


@never_cache
@require_POST
@verified_email_required
@recent_sign_in_required
def autopay_pause(request, account_id: int):
    return _autopay_action(
        request, account_id, autopay_enrolment.autopay_pause,
        _("Autopay is paused for account %(number)s. Nothing will be charged until you resume it."),
    )  # fmt: skip


@never_cache
@require_POST
@verified_email_required
@recent_sign_in_required
def autopay_resume(request, account_id: int):
    return _autopay_action(
        request, account_id, autopay_enrolment.autopay_resume, _("Autopay is on again for account %(number)s.")
    )


@never_cache
@require_POST
@verified_email_required
@recent_sign_in_required
def autopay_cancel(request, account_id: int):
    return _autopay_action(
        request, account_id, autopay_enrolment.autopay_cancel, _("Autopay is cancelled for account %(number)s.")
    )


@never_cache
@require_POST
@verified_email_required
@recent_sign_in_required
def paperless(request, account_id: int):
    """One tick: ticked sends the bills to the e-mail given, unticked goes back to paper. The e-mail address where
    bills go is a contact detail, so this needs a recent sign-in like the payment settings."""
    link = linked_or_404(request, account_id)
    account = link.customer_account
    form = PaperlessForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect(f"{reverse('accounts:account', args=[account.pk])}#paperless")
    data = form.cleaned_data
    if data["paperless"]:
        paperless_enroll(
            account=account, email=data["email"], consent_text=paperless_consent_text(account=account),
            ip=client_ip(request), via=PaperlessEnrollment.Via.PORTAL, user=request.user,
        )  # fmt: skip
        messages.success(request, _("Your bills will come by e-mail to %(email)s.") % {"email": data["email"]})
    else:
        if paperless_cancel(account=account, ip=client_ip(request), user=request.user):
            messages.success(request, _("Your bills will come by post again."))
    return redirect(f"{reverse('accounts:account', args=[account.pk])}#paperless")
