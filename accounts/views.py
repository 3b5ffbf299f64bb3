"""The signed-in payer's pages: the dashboard, one account's bills and payments, linking and unlinking accounts.

Every page needs a login with a verified e-mail address. A bill or an account that is not linked to the login answers
404, exactly like one that does not exist, so nobody can probe for other people's bills by number.
"""

from allauth.account.decorators import verified_email_required
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing import lookup
from billing.documents import bill_document_get, bill_document_html, bill_pdf_response
from billing.errors import ApplicationError
from billing.forms import LookupForm
from billing.paylinks import biller_today
from billing.selectors import biller_for_site

from . import invitations, selectors, services

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
    context = {
        "summary": selectors.account_summary(link=link),
        "account": account,
        "bills": bills,
        "payments": payments,
        "today": biller_today(account.biller),
    }
    return render(request, "accounts/account_detail.html", context)


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


# --- Enrolment invitations (accounts/invitations.py) -----------------------------------------------------------------
# /me/invite/<token>/ opens an e-mailed link. Nothing is used up on GET (mail scanners open links): paperless is one
# POST, join and autopay finish at /me/invite/continue/ once the browser is signed in. Every bad link (unknown,
# tampered, used, expired, revoked) gets the same page with the same status.


def _no_referrer(response):
    response["Cache-Control"] = "private, no-store"
    response["Referrer-Policy"] = "no-referrer"  # the token is in this page's address
    return response


def _invitation_invalid(request, *, token: str = "", status: int = 404):
    return _no_referrer(render(request, "accounts/invitation_invalid.html", {"token": token}, status=status))


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
            return _no_referrer(render(request, "accounts/invitation_paperless_done.html", {"invitation": invitation}))
        context = {
            "invitation": invitation,
            "account": account,
            "token": token,
            "consent_text": invitations.paperless_consent_text(invitation=invitation),
        }
        return _no_referrer(render(request, "accounts/invitation_paperless.html", context))
    # Join and autopay: remember the invitation in this browser's session, then sign in (or up) and finish.
    request.session[invitations.SESSION_KEY] = invitation.pk
    if request.user.is_authenticated:
        return redirect("accounts:invitation_continue")
    context = {"invitation": invitation, "account": account, "next": reverse("accounts:invitation_continue")}
    return _no_referrer(render(request, "accounts/invitation_join.html", context))


@never_cache
@require_http_methods(["GET", "POST"])
@verified_email_required
def invitation_continue(request):
    """After signing in: link the invited account. At once when the login holds the invited address; after one
    confirming click when it does not, so nobody links an account to the wrong login by accident."""
    invitation = invitations.invitation_get_by_pk(pk=request.session.get(invitations.SESSION_KEY))
    if invitation is None:
        request.session.pop(invitations.SESSION_KEY, None)
        return _invitation_invalid(request)
    matches = invitations.invitation_email_matches(invitation=invitation, user=request.user)
    if request.method == "POST" or matches:
        try:
            link = invitations.invitation_accept_link(invitation=invitation, user=request.user)
        except ApplicationError:
            return _invitation_invalid(request)
        return _invitation_done(request, invitation, link)
    context = {
        "invitation": invitation,
        "account": invitation.customer_account,
        "invited_email": invitations.masked_email(invitation.email),
    }
    return render(request, "accounts/invitation_confirm.html", context)


@never_cache
@require_POST
def invitation_signup(request):
    """Create a login from the invitation page. With exactly the invited address, the address counts as verified
    (the payer opened a link sent to it), so there is no verification e-mail to wait for; with any other address,
    allauth verifies it as usual. allauth does the rest (validation, rate limits, signing in, `next`)."""
    from allauth.account.adapter import get_adapter
    from allauth.account.views import signup

    invitation = invitations.invitation_get_by_pk(pk=request.session.get(invitations.SESSION_KEY))
    if invitation is None:
        return _invitation_invalid(request)
    if request.POST.get("email", "").strip().lower() == invitation.email.lower():
        get_adapter(request).stash_verified_email(request, invitation.email)
    response = signup(request)
    # allauth takes the stashed address only when a login is created. If the form had errors it is still here:
    # drop it, so a second try with another address cannot carry the invited one along.
    if request.session.get("account_verified_email"):
        request.session["account_verified_email"] = None
    return response


@never_cache
@require_POST
def invitation_renew(request):
    """"Send me a new link": always the same answer, whether the token was real or not."""
    token = request.POST.get("token", "")
    try:
        invitations.invitation_renew(token=token, ip=request.META.get("REMOTE_ADDR", ""))
    except invitations.InvitationRenewLocked as locked:
        return _no_referrer(
            render(request, "accounts/invitation_invalid.html", {"renew_error": locked.message}, status=429)
        )
    return _no_referrer(render(request, "accounts/invitation_invalid.html", {"renewed": True}))
