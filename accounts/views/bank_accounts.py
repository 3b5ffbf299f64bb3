"""Saving a bank account for autopay under a standing SEPA mandate, and revoking the mandate. Like every payment
setting, these need a recent sign-in. The IBAN goes to our server and on to the payment processor; only its bank,
country and last 4 digits are kept."""

from allauth.account.decorators import verified_email_required
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from billing.errors import ApplicationError
from billing.methods.bank import bank_account_save, bank_mandate_revoke
from billing.methods.selectors import user_payment_methods
from billing.models import BankMandate
from billing.payments.bank_forms import BankDebitForm
from billing.payments.mandates import bank_debit_available
from billing.views import mandate_acceptance_of

from .common import client_ip, linked_or_404, recent_sign_in_required


@never_cache
@require_http_methods(["GET", "POST"])
@verified_email_required
@recent_sign_in_required(allow_get=True)
def autopay_bank(request, account_id: int):
    """The bank account and the standing mandate for one account's autopay. Saved, it opens the autopay form with the
    bank account chosen, where the payer picks the day and the maximum and turns autopay on."""
    link = linked_or_404(request, account_id)
    account = link.customer_account
    if not bank_debit_available(account.biller):
        raise Http404
    form = BankDebitForm(request.POST or None, biller=account.biller, usage=BankMandate.Usage.MULTI_USE)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                method = bank_account_save(
                    user=request.user, account=account, kind="sepa_debit", account_number=data["iban"],
                    holder_name=data["holder_name"], holder_email=request.user.email,
                    shown_text_digest=data.get("mandate_digest", ""), acceptance=mandate_acceptance_of(request),
                )  # fmt: skip
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                messages.success(
                    request, _("Bank account saved: %(account)s. Now choose when autopay debits it.") % {
                        "account": method.summary}
                )  # fmt: skip
                return redirect(f"{reverse('accounts:autopay', args=[account.pk])}?card={method.pk}")
        status = 400
    return render(request, "accounts/autopay_bank.html", {"account": account, "form": form}, status=status)


@never_cache
@require_POST
@verified_email_required
@recent_sign_in_required
def bank_mandate_revoke_view(request, method_id: int):
    """Revoke a saved bank account's mandate: nothing more is debited under it, from now on."""
    method = user_payment_methods(user=request.user).filter(pk=method_id).first()
    if method is None or not method.is_bank_account:
        raise Http404
    try:
        mandate = bank_mandate_revoke(user=request.user, payment_method=method, ip=client_ip(request))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request, _("Mandate %(reference)s is revoked: nothing more will be debited from %(account)s.")
            % {"reference": mandate.display_reference, "account": method.summary},
        )  # fmt: skip
    return redirect("accounts:payment_methods")
