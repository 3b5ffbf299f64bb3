"""Linking and unlinking accounts, and the pages e-mailed links open: a guest payment's enrolment links and
enrolment invitations.

Linking needs a login with a verified e-mail address; the e-mailed links prove themselves (a token, and for autopay a
one-time code sent to the address).
"""

from allauth.account.decorators import verified_email_required
from allauth.account.internal.flows.login import record_authentication
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import login as auth_login
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from billing.bills.selectors import biller_for_site
from billing.enrolment.guest import guest_link_code_send, guest_link_get, guest_paperless_confirm
from billing.enrolment.paperless import paperless_consent_text
from billing.errors import ApplicationError
from billing.models import GuestEnrollmentLink
from billing.payments import lookup
from billing.payments.forms import LookupForm

from .. import invitations, services
from ..forms import GuestSignupForm
from ..guest_enrolment import guest_autopay_complete, guest_link_holder_ok
from .common import client_ip, linked_or_404


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
    link = linked_or_404(request, account_id)
    if request.method == "POST":
        services.account_unlink(user=request.user, link=link)
        messages.success(
            request,
            _("Account %(number)s is no longer linked to your login.")
            % {"number": link.customer_account.account_number},
        )
        return redirect("accounts:dashboard")
    return render(request, "accounts/unlink_confirm.html", {"link": link, "account": link.customer_account})



# --- From a guest payment's e-mailed links -------------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def guest_paperless(request, token: str):
    """GET shows what is being agreed to (and mail scanners that open links change nothing); one button confirms."""
    try:
        link = guest_link_get(token=token, purpose=GuestEnrollmentLink.Purpose.PAPERLESS)
    except ApplicationError as error:
        return render(request, "accounts/guest_link_invalid.html", {"message": error.message}, status=410)
    account = link.request.account
    if request.method == "POST":
        try:
            enrollment = guest_paperless_confirm(token=token, ip=client_ip(request))
        except ApplicationError as error:
            return render(request, "accounts/guest_link_invalid.html", {"message": error.message}, status=410)
        return render(request, "accounts/guest_paperless_done.html", {"account": account, "enrollment": enrollment})
    context = {
        "account": account,
        "email": link.request.email,
        "consent_text": paperless_consent_text(account=account),
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
        link = guest_link_get(token=token, purpose=GuestEnrollmentLink.Purpose.AUTOPAY)
    except ApplicationError as error:
        return render(request, "accounts/guest_link_invalid.html", {"message": error.message}, status=410)
    email = link.request.email
    account = link.request.account
    user = request.user if request.user.is_authenticated else None
    signed_in_as_other = user is not None and not guest_link_holder_ok(link=link, user=user)
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
            guest_link_code_send(link=link)
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
        user, method, created = guest_autopay_complete(
            token=token, code=form.cleaned_data["code"], user=user,
            password=form.cleaned_data.get("password") or None, ip=client_ip(request),
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
            "consent_text": paperless_consent_text(account=account),
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
