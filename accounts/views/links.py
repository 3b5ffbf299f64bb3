"""The signed-in payer's pages: the dashboard, one account's bills and payments, linking and unlinking accounts.

Every page needs a login with a verified e-mail address. A bill or an account that is not linked to the login answers
404, exactly like one that does not exist, so nobody can probe for other people's bills by number.
"""

from allauth.account.decorators import reauthentication_required, verified_email_required
from allauth.account.internal.flows.login import record_authentication
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import login as auth_login
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing import enrollments, lookup
from billing.documents import bill_document_get, bill_document_html, bill_pdf_response
from billing.errors import ApplicationError
from billing.forms import LookupForm
from billing.models import GuestEnrollmentLink, PaperlessEnrollment
from billing.money import format_money, from_minor
from billing.paylinks import biller_today
from billing.selectors import biller_for_site

from .. import invitations, selectors, services
from ..forms import AutopayForm, GuestSignupForm, PaperlessForm

BILLS_PER_PAGE = 12
PAYMENTS_PER_PAGE = 12


def _linked_or_404(request, account_id: int):
    link = selectors.user_account_link(user=request.user, account_id=account_id)
    if link is None:
        raise Http404
    return link


def _private(response):
    response["Cache-Control"] = "private, no-store"
    return response


@never_cache
@require_GET
@verified_email_required
def dashboard(request):
    summaries = selectors.dashboard_accounts(user=request.user)
    today = biller_today(summaries[0].account.biller) if summaries else None
    # Autopay, paperless and the next autopay charge of every account: a fixed number of queries, not one per card.
    statuses = enrollments.enrollment_statuses(account_ids=[s.account.pk for s in summaries], today=today)
    for summary in summaries:
        summary.enrollment = statuses[summary.account.pk]
    return render(request, "accounts/dashboard.html", {"summaries": summaries, "today": today})


@never_cache
@require_GET
@verified_email_required
def account_detail(request, account_id: int):
    link = _linked_or_404(request, account_id)
    account = link.customer_account
    bills = Paginator(selectors.account_bills(account=account), BILLS_PER_PAGE).get_page(request.GET.get("page"))
    payments = Paginator(selectors.account_payments(account=account), PAYMENTS_PER_PAGE).get_page(
        request.GET.get("payments")
    )
    today = biller_today(account.biller)
    summary = selectors.account_summary(link=link)
    summary.enrollment = enrollments.enrollment_statuses(account_ids=[account.pk], today=today)[account.pk]
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
        "paperless_consent": enrollments.paperless_consent_text(account=account),
    }
    return render(request, "accounts/account_detail.html", context)


@never_cache
@require_http_methods(["GET", "POST"])
@verified_email_required
def notice_choices(request, account_id: int):
    """Which notices this account gets, on which channel: one tick per kind and channel the biller sends."""
    link = _linked_or_404(request, account_id)
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


def _link_page(request, *, biller, form, error: str = "", status: int = 200):
    return render(request, "accounts/link.html", {"biller": biller, "form": form, "link_error": error}, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
@verified_email_required
def account_link(request):
    """Link a customer account with the details on its bill (the same check, and limits, as the guest lookup)."""
    biller = biller_for_site()
    if biller is None:
        return _link_page(request, biller=None, form=None)
    if request.method != "POST":
        return _link_page(request, biller=biller, form=LookupForm(biller=biller))
    form = LookupForm(request.POST, biller=biller)
    if not form.is_valid():
        return _link_page(request, biller=biller, form=form)
    data = form.cleaned_data
    try:
        link, created = services.account_link(
            user=request.user,
            account_number=data["account_number"],
            factor=lookup.LookupFactor(
                postal_code=data.get("postal_code"), last_bill_amount=data.get("last_bill_amount")
            ),
            ip=request.META.get("REMOTE_ADDR", ""),
            biller=biller,
        )
    except ApplicationError as error:
        # A fresh, empty form: echoing the typed number back would make a miss and a wrong factor look different.
        status = 429 if isinstance(error, services.AccountLinkLocked) else 200
        form = LookupForm(biller=biller).point_to_alert("link-error")
        return _link_page(request, biller=biller, form=form, error=error.message, status=status)
    number = link.customer_account.account_number
    if created:
        messages.success(request, _("Account %(number)s is now linked to your login.") % {"number": number})
    else:
        messages.info(request, _("Account %(number)s was already linked to your login.") % {"number": number})
    return redirect("accounts:dashboard")


@never_cache
@require_http_methods(["GET", "POST"])
@verified_email_required
def account_unlink(request, account_id: int):
    """GET asks for confirmation; POST removes the link (never the account, its bills or its payments)."""
    link = _linked_or_404(request, account_id)
    if request.method == "POST":
        services.account_unlink(user=request.user, link=link)
        messages.success(
            request,
            _("Account %(number)s is no longer linked to your login.")
            % {"number": link.customer_account.account_number},
        )
        return redirect("accounts:dashboard")
    return render(request, "accounts/unlink_confirm.html", {"link": link, "account": link.customer_account})


@never_cache
@require_POST
@verified_email_required
def account_pay(request, account_id: int):
    """"Pay now": grant this session the account's payment screen, as a guest lookup or a pay link would."""
    link = _linked_or_404(request, account_id)
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
    toolbar = {"pdf_url": reverse("accounts:bill_pdf", args=[bill.pk])}
    return _private(HttpResponse(bill_document_html(document=document, request=request, extra={"toolbar": toolbar})))


@require_GET
@verified_email_required
def bill_pdf(request, bill_id: int):
    return bill_pdf_response(bill=_payer_bill_or_404(request, bill_id), actor=request.user)


# --- Payment settings: saved cards, autopay, paperless -------------------------------------------------------------
# Changing any of them needs a recent sign-in (allauth's reauthentication): a borrowed or stolen session cannot add
# a card, point autopay at one, or send the bills to another address. allauth keeps the POST while the payer
# confirms it is them, then replays it.


def _ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _own_method_or_404(request, method_id: int):
    method = enrollments.user_payment_methods(user=request.user).filter(pk=method_id).first()
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
    methods = list(enrollments.user_payment_methods(user=request.user))
    today = timezone.localdate()
    return render(
        request,
        "accounts/payment_methods.html",
        {"methods": methods, "today": today, "expired": {m.pk for m in methods if m.is_expired(today)}},
    )


@never_cache
@require_GET
@verified_email_required
@reauthentication_required
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
@reauthentication_required
def payment_method_setup(request):
    """JSON: a fresh SetupIntent's client secret for stripe.js."""
    try:
        client_secret = enrollments.payment_method_setup_start(user=request.user)
    except ApplicationError as error:
        return JsonResponse({"error": error.message}, status=409)
    return JsonResponse({"clientSecret": client_secret})


@never_cache
@require_POST
@verified_email_required
@reauthentication_required
def payment_method_save(request):
    """stripe.js confirmed the SetupIntent; the page posts its id (never card data). The server checks and saves."""
    for_account = _next_autopay_account(request)
    try:
        method = enrollments.payment_method_save_from_setup(
            user=request.user, setup_intent_id=request.POST.get("setup_intent", ""), ip=_ip(request)
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
        action(user=request.user, payment_method=method, ip=_ip(request))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, done % {"card": method.summary})
    return redirect("accounts:payment_methods")


@never_cache
@require_POST
@verified_email_required
@reauthentication_required
def payment_method_default(request, method_id: int):
    return _method_action(
        request, method_id, enrollments.payment_method_make_default, _("%(card)s is now your default card.")
    )


@never_cache
@require_POST
@verified_email_required
@reauthentication_required
def payment_method_backup(request, method_id: int):
    return _method_action(
        request, method_id, enrollments.payment_method_make_backup, _("%(card)s is now your backup card.")
    )


@never_cache
@require_POST
@verified_email_required
@reauthentication_required
def payment_method_no_backup(request):
    enrollments.payment_method_clear_backup(user=request.user, ip=_ip(request))
    messages.success(request, _("You have no backup card now. If a charge on your default card fails, we will tell you."))
    return redirect("accounts:payment_methods")


@never_cache
@require_POST
@verified_email_required
@reauthentication_required
def payment_method_remove(request, method_id: int):
    return _method_action(request, method_id, enrollments.payment_method_remove, _("%(card)s was removed."))


def _autopay_page(request, *, link, form, status: int = 200):
    account = link.customer_account
    current = enrollments.autopay_current(account=account)
    today = biller_today(account.biller)
    context = {
        "account": account,
        "form": form,
        "current": current,
        "current_is_mine": current is not None and current.user_id == request.user.pk,
        "upcoming": enrollments.autopay_upcoming(account=account, today=today),
        "max_display": format_money(current.max_amount, current.currency) if current and current.max_amount else "",
        "consent_text": enrollments.autopay_consent_text(account=account),
        "has_methods": bool(form.fields["payment_method"].choices),
    }
    return render(request, "accounts/autopay.html", context, status=status)


def _autopay_form(request, account, data=None):
    methods = list(enrollments.user_payment_methods(user=request.user))
    today = timezone.localdate()
    usable = [m for m in methods if not m.is_expired(today)]
    initial = {}
    current = enrollments.autopay_current(account=account)
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
@reauthentication_required(allow_get=True)
def autopay(request, account_id: int):
    """See autopay for an account; POST turns it on (or replaces the settings) with the mandate shown here."""
    link = _linked_or_404(request, account_id)
    account = link.customer_account
    if request.method != "POST":
        return _autopay_page(request, link=link, form=_autopay_form(request, account))
    form = _autopay_form(request, account, data=request.POST)
    if not form.is_valid():
        return _autopay_page(request, link=link, form=form, status=400)
    data = form.cleaned_data
    method = enrollments.user_payment_methods(user=request.user).filter(pk=data["payment_method"]).first()
    try:
        enrollments.autopay_enroll(
            account=account,
            user=request.user,
            payment_method=method,
            charge_rule=data["charge_rule"],
            days_before=data.get("days_before"),
            max_amount=data.get("max_amount"),
            consent_text=enrollments.autopay_consent_text(account=account),
            ip=_ip(request),
            replace=request.POST.get("replace") == "1",
        )
    except ApplicationError as error:
        form.add_error(None, error.message)
        return _autopay_page(request, link=link, form=form, status=400)
    messages.success(request, _("Autopay is on for account %(number)s.") % {"number": account.account_number})
    return redirect("accounts:autopay", account_id=account.pk)


def _autopay_action(request, account_id: int, action, done: str):
    link = _linked_or_404(request, account_id)
    current = enrollments.autopay_current(account=link.customer_account)
    if current is None:
        raise Http404
    try:
        action(enrollment=current, user=request.user, ip=_ip(request))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, done % {"number": link.customer_account.account_number})
    return redirect("accounts:autopay", account_id=account_id)


@never_cache
@require_POST
@verified_email_required
@reauthentication_required
def autopay_pause(request, account_id: int):
    return _autopay_action(
        request, account_id, enrollments.autopay_pause,
        _("Autopay is paused for account %(number)s. Nothing will be charged until you resume it."),
    )  # fmt: skip


@never_cache
@require_POST
@verified_email_required
@reauthentication_required
def autopay_resume(request, account_id: int):
    return _autopay_action(
        request, account_id, enrollments.autopay_resume, _("Autopay is on again for account %(number)s.")
    )


@never_cache
@require_POST
@verified_email_required
@reauthentication_required
def autopay_cancel(request, account_id: int):
    return _autopay_action(
        request, account_id, enrollments.autopay_cancel, _("Autopay is cancelled for account %(number)s.")
    )


@never_cache
@require_POST
@verified_email_required
@reauthentication_required
def paperless(request, account_id: int):
    """One tick: ticked sends the bills to the e-mail given, unticked goes back to paper. The e-mail address where
    bills go is a contact detail, so this needs a recent sign-in like the payment settings."""
    link = _linked_or_404(request, account_id)
    account = link.customer_account
    form = PaperlessForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect(f"{reverse('accounts:account', args=[account.pk])}#paperless")
    data = form.cleaned_data
    if data["paperless"]:
        enrollments.paperless_enroll(
            account=account, email=data["email"], consent_text=enrollments.paperless_consent_text(account=account),
            ip=_ip(request), via=PaperlessEnrollment.Via.PORTAL, user=request.user,
        )  # fmt: skip
        messages.success(request, _("Your bills will come by e-mail to %(email)s.") % {"email": data["email"]})
    else:
        if enrollments.paperless_cancel(account=account, ip=_ip(request), user=request.user):
            messages.success(request, _("Your bills will come by post again."))
    return redirect(f"{reverse('accounts:account', args=[account.pk])}#paperless")


# --- From a guest payment's e-mailed links -------------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def guest_paperless(request, token: str):
    """GET shows what is being agreed to (and mail scanners that open links change nothing); one button confirms."""
    try:
        link = enrollments.guest_link_get(token=token, purpose=GuestEnrollmentLink.Purpose.PAPERLESS)
    except ApplicationError as error:
        return render(request, "accounts/guest_link_invalid.html", {"message": error.message}, status=410)
    account = link.request.account
    if request.method == "POST":
        try:
            enrollment = enrollments.guest_paperless_confirm(token=token, ip=_ip(request))
        except ApplicationError as error:
            return render(request, "accounts/guest_link_invalid.html", {"message": error.message}, status=410)
        return render(request, "accounts/guest_paperless_done.html", {"account": account, "enrollment": enrollment})
    context = {
        "account": account,
        "email": link.request.email,
        "consent_text": enrollments.paperless_consent_text(account=account),
    }
    return render(request, "accounts/guest_paperless.html", context)


GUEST_CODE_SESSION_KEY = "billpay_guest_code_sent"  # links (pk) this browser asked a code for: show the code form


@never_cache
@require_http_methods(["GET", "POST"])
def guest_autopay(request, token: str):
    """The card from a guest payment, saved to a login of the address the link went to, and the account linked;
    then the autopay form with that card chosen. The link alone gets nothing: the visitor asks for a one-time code,
    which goes to that address, and brings it back (a forwarded link's holder never sees it)."""
    try:
        link = enrollments.guest_link_get(token=token, purpose=GuestEnrollmentLink.Purpose.AUTOPAY)
    except ApplicationError as error:
        return render(request, "accounts/guest_link_invalid.html", {"message": error.message}, status=410)
    email = link.request.email
    account = link.request.account
    user = request.user if request.user.is_authenticated else None
    signed_in_as_other = user is not None and not enrollments.guest_link_holder_ok(link=link, user=user)
    existing = user is None and get_user_model().objects.filter(email__iexact=email).exists()
    action = request.POST.get("action", "") if request.method == "POST" else ""
    form = GuestSignupForm(request.POST if action == "finish" else None, email=email, signed_in=user is not None)
    sent = link.pk in request.session.get(GUEST_CODE_SESSION_KEY, [])
    context = {
        "account": account, "email": email, "form": form,
        "user_matches": user is not None and not signed_in_as_other, "existing": existing, "code_sent": sent,
        "card": link.request.payment.payment_method_summary,
        "login_url": f"{reverse('account_login')}?next={request.path}",
        "signed_in_as_other": signed_in_as_other,
    }  # fmt: skip
    if action not in ("send", "finish") or existing or signed_in_as_other:
        return render(request, "accounts/guest_autopay.html", context)
    if action == "send":
        try:
            enrollments.guest_link_code_send(link=link)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            request.session[GUEST_CODE_SESSION_KEY] = [link.pk] + [
                pk for pk in request.session.get(GUEST_CODE_SESSION_KEY, []) if pk != link.pk
            ][:9]
            messages.success(request, _("We e-mailed a code to %(email)s.") % {"email": email})
        return redirect(request.path)
    context["code_sent"] = True
    if not form.is_valid():
        return render(request, "accounts/guest_autopay.html", context, status=400)
    try:
        user, method, created = enrollments.guest_autopay_complete(
            token=token, code=form.cleaned_data["code"], user=user,
            password=form.cleaned_data.get("password") or None, ip=_ip(request),
        )  # fmt: skip
    except ApplicationError as error:
        form.add_error(None, error.message)
        return render(request, "accounts/guest_autopay.html", context, status=400)
    if created:
        auth_login(request, user, backend="allauth.account.auth_backends.AuthenticationBackend")
        # The payer brought back the code e-mailed to the address a minute ago: recorded as allauth's own
        # login-by-code records it, so the autopay form that follows need not ask again.
        record_authentication(request, user, method="code", email=email)
    messages.success(request, _("Card saved to your login: %(card)s. Now choose how autopay works.") % {
        "card": method.summary
    })  # fmt: skip
    return redirect(f"{reverse('accounts:autopay', args=[account.pk])}?card={method.pk}")


# --- Enrolment invitations (accounts/invitations.py) -----------------------------------------------------------------
# /me/invite/<token>/ opens an e-mailed link. Nothing is used up on GET (mail scanners open links): paperless is one
# POST, join and autopay finish at /me/invite/continue/ once the browser is signed in. Every bad link (unknown,
# tampered, used, expired, revoked) gets the same page with the same status.


def _private_page(response):
    # The token is in this page's address: never cache it. The site-wide "same-origin" Referrer-Policy already keeps
    # the address from other sites; "no-referrer" here would make browsers post this page's forms with "Origin: null",
    # which Django's CSRF check (rightly) refuses.
    response["Cache-Control"] = "private, no-store"
    return response


def _invitation_invalid(request, *, token: str = "", status: int = 404):
    return _private_page(render(request, "accounts/invitation_invalid.html", {"token": token}, status=status))


def _invitation_done(request, invitation, link):
    request.session.pop(invitations.SESSION_KEY, None)
    account = invitation.customer_account
    messages.success(
        request, _("Account %(number)s is now linked to your login.") % {"number": account.account_number}
    )
    if invitation.kind == invitations.InvitationKind.AUTOPAY:
        for name in AUTOPAY_URL_NAMES:
            try:
                return redirect(reverse(name, args=[account.pk]))
            except NoReverseMatch:
                continue
        return redirect("accounts:account", account_id=account.pk)
    return redirect("accounts:dashboard")


# The signed-in payer's autopay set-up page for one account (billing's enrolment work); the account page until then.
AUTOPAY_URL_NAMES = ("accounts:autopay",)


@never_cache
@require_http_methods(["GET", "POST"])
def invitation_open(request, token: str):
    invitation = invitations.invitation_get(token=token)
    if invitation is None:
        return _invitation_invalid(request, token=token)
    account = invitation.customer_account
    if invitation.kind == invitations.InvitationKind.PAPERLESS:
        if request.method == "POST":
            try:
                invitations.invitation_accept_paperless(
                    invitation=invitation, ip=request.META.get("REMOTE_ADDR", ""), user=request.user
                )
            except ApplicationError:
                return _invitation_invalid(request, token=token)
            return _private_page(render(request, "accounts/invitation_paperless_done.html", {"invitation": invitation}))
        context = {
            "invitation": invitation,
            "account": account,
            "token": token,
            "consent_text": invitations.paperless_consent_text(invitation=invitation),
        }
        return _private_page(render(request, "accounts/invitation_paperless.html", context))
    # Join and autopay: remember the invitation in this browser's session, then sign in (or up) and finish.
    request.session[invitations.SESSION_KEY] = invitation.pk
    if request.user.is_authenticated:
        return redirect("accounts:invitation_continue")
    context = {"invitation": invitation, "account": account, "next": reverse("accounts:invitation_continue")}
    return _private_page(render(request, "accounts/invitation_join.html", context))


def _invitation_lookup_page(request, invitation, *, form, error: str = "", status: int = 200):
    context = {
        "invitation": invitation,
        "account": invitation.customer_account,
        "invited_email": invitations.masked_email(invitation.email),
        "form": form,
        "link_error": error,
    }
    return _private_page(render(request, "accounts/invitation_confirm.html", context, status=status))


@never_cache
@require_http_methods(["GET", "POST"])
@verified_email_required
def invitation_continue(request):
    """After signing in: link the invited account. At once when the login holds the invited address (verified);
    otherwise only after the protected lookup (account number and second factor), as on /me/link/, because a
    forwarded link proves nothing about who holds it."""
    invitation = invitations.invitation_get_by_pk(pk=request.session.get(invitations.SESSION_KEY))
    if invitation is None:
        request.session.pop(invitations.SESSION_KEY, None)
        return _invitation_invalid(request)
    if invitations.invitation_email_matches(invitation=invitation, user=request.user):
        try:
            link = invitations.invitation_accept_link(invitation=invitation, user=request.user)
        except ApplicationError:
            return _invitation_invalid(request)
        return _invitation_done(request, invitation, link)
    biller = invitation.customer_account.biller
    if request.method != "POST":
        return _invitation_lookup_page(request, invitation, form=LookupForm(biller=biller))
    form = LookupForm(request.POST, biller=biller)
    if not form.is_valid():
        return _invitation_lookup_page(request, invitation, form=form)
    data = form.cleaned_data
    try:
        link = invitations.invitation_accept_by_lookup(
            invitation=invitation, user=request.user, account_number=data["account_number"],
            factor=lookup.LookupFactor(postal_code=data.get("postal_code"), last_bill_amount=data.get("last_bill_amount")),
            ip=request.META.get("REMOTE_ADDR", ""),
        )  # fmt: skip
    except ApplicationError as error:
        # A fresh, empty form, as on /me/link/: a miss and a wrong factor must look the same.
        status = 429 if isinstance(error, services.AccountLinkLocked) else 200
        form = LookupForm(biller=biller).point_to_alert("link-error")
        return _invitation_lookup_page(request, invitation, form=form, error=error.message, status=status)
    return _invitation_done(request, invitation, link)


@never_cache
@require_POST
def invitation_signup(request):
    """Create a login from the invitation page. The address is verified as for any sign-up (allauth's e-mail), even
    the invited one: whoever opened the link may have had it forwarded. allauth does the rest (validation, rate
    limits, the verification e-mail, signing in, `next`)."""
    from allauth.account.views import signup

    if invitations.invitation_get_by_pk(pk=request.session.get(invitations.SESSION_KEY)) is None:
        return _invitation_invalid(request)
    return signup(request)


@never_cache
@require_POST
def invitation_renew(request):
    """"Send me a new link": always the same answer, whether the token was real or not."""
    token = request.POST.get("token", "")
    try:
        invitations.invitation_renew(token=token, ip=request.META.get("REMOTE_ADDR", ""))
    except invitations.InvitationRenewLocked as locked:
        return _private_page(
            render(request, "accounts/invitation_invalid.html", {"renew_error": locked.message}, status=429)
        )
    return _private_page(render(request, "accounts/invitation_invalid.html", {"renewed": True}))
