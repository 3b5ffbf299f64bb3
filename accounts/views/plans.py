"""The payer's payment plan pages: set one up ("Pay over time", from the dashboard or the pay screen), and accept
one staff arranged from the e-mailed link. Views parse the form and call one service (billing/plans/)."""

from allauth.account.decorators import verified_email_required
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from billing.clock import biller_today
from billing.errors import ApplicationError
from billing.methods.selectors import user_payment_methods
from billing.methods.services import payment_method_may_pay
from billing.money import format_money
from billing.payments import lookup
from billing.plans.selectors import plan_current, plan_eligibility, plan_view
from billing.plans.services import plan_accept_by_link, plan_from_link, plan_terms_text
from billing.plans.setup import plan_down_payment_take, plan_setup_by_payer

from ..forms import BY_HAND, PlanForm
from .common import client_ip, linked_or_404


def _title(schedule) -> str:
    """ "3 monthly instalments of $90.00" (the regular amount), with the down payment first when there is one."""
    money = lambda minor: format_money(minor, schedule.currency)  # noqa: E731
    count, amount = schedule.count, money(schedule.regular_amount)
    if schedule.frequency == "weekly":
        text = ngettext("%(count)d weekly instalment of %(amount)s", "%(count)d weekly instalments of %(amount)s", count)
    elif schedule.frequency == "biweekly":
        text = ngettext("%(count)d instalment every two weeks of %(amount)s",
                        "%(count)d instalments every two weeks of %(amount)s", count)  # fmt: skip
    else:
        text = ngettext("%(count)d monthly instalment of %(amount)s", "%(count)d monthly instalments of %(amount)s",
                        count)  # fmt: skip
    text = text % {"count": count, "amount": amount}
    if schedule.down_payment:
        text = _("%(down)s now, then %(rest)s") % {"down": money(schedule.down_payment), "rest": text}
    return text


def _remainder_note(schedule) -> str:
    if not schedule.remainder:
        return ""
    values = {"amount": format_money(schedule.remainder, schedule.currency)}
    if schedule.remainder_on == "first":
        return _("The first instalment is %(amount)s more, so the instalments add up to your balance exactly.") % values
    return _("The last instalment is %(amount)s more, so the instalments add up to your balance exactly.") % values


def _lines(instalments, currency, *, paid=lambda i: False) -> list[dict]:
    return [
        {"number": i.number, "date": i.due_date, "amount": format_money(i.amount, currency), "paid": paid(i)}
        for i in instalments
    ]


def _options(eligibility) -> list[dict]:
    return [
        {"key": s.key, "title": _title(s), "lines": _lines(s.instalments, s.currency), "remainder_note": _remainder_note(s)}
        for s in eligibility.options
    ]


def _view_context(view) -> dict:
    return {"view": view, "lines": _lines(view.instalments, view.plan.currency, paid=lambda i: i.status == "paid")}


def _methods(request, account) -> list:
    if not payment_method_may_pay(user=request.user, account=account):
        return []
    return list(user_payment_methods(user=request.user))


def _chosen_method(request, form):
    value = form.cleaned_data["method"]
    if value == BY_HAND:
        return None, True
    return user_payment_methods(user=request.user).filter(pk=int(value)).first(), False


def _after_setup(request, outcome):
    """Where the payer goes once the plan is agreed: the dashboard when it runs, else the pay screen for the down
    payment (by hand, or after a decline or a bank check)."""
    plan = outcome.plan
    if outcome.down_payment in ("none", "paid"):
        messages.success(request, _("Your payment plan is set up."))
        return redirect("accounts:dashboard")
    down = plan.instalments.filter(number=0).first()
    text = outcome.message or _("Your plan starts when the down payment of %(amount)s is paid. Pay it here.") % {
        "amount": format_money(down.amount if down else 0, plan.currency)
    }
    messages.info(request, text)
    lookup.grant_store(request, account=plan.account)
    return redirect("billing:pay_account")


@never_cache
@require_http_methods(["GET", "POST"])
@verified_email_required
def plan_setup(request, account_id: int):
    link = linked_or_404(request, account_id)
    account = link.customer_account
    current = plan_current(account_id=account.pk)
    if current is not None:
        if request.method == "POST" and current.status == current.Status.PROPOSED and current.agreed_by_id:
            return _after_setup(request, plan_down_payment_take(plan=current, user=request.user))
        return render(request, "accounts/plan.html", {"account": account, **_view_context(plan_view(current))})
    eligibility = plan_eligibility(account=account, today=biller_today(account.biller))
    methods = _methods(request, account)
    form = PlanForm(request.POST or None, schedules=eligibility.options, methods=methods)
    status = 200
    if request.method == "POST" and eligibility.eligible:
        if form.is_valid():
            method, by_hand = _chosen_method(request, form)
            try:
                outcome = plan_setup_by_payer(account=account, user=request.user, ip=client_ip(request),
                                              schedule_key=form.cleaned_data["schedule"], payment_method=method,
                                              pays_by_hand=by_hand)  # fmt: skip
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                return _after_setup(request, outcome)
        status = 400
    context = {
        "account": account, "eligibility": eligibility, "form": form, "has_methods": bool(methods),
        "options": _options(eligibility), "total_display": format_money(eligibility.total, account.biller.currency),
        "terms": plan_terms_text(account=account, total=eligibility.total) if eligibility.eligible else "",
    }  # fmt: skip
    return render(request, "accounts/plan_setup.html", context, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
@verified_email_required
def plan_accept(request, token: str):
    """Staff's proposal from the e-mailed link. Opening it changes nothing; agreeing uses the link up."""
    try:
        plan = plan_from_link(token=token)
    except ApplicationError as error:
        return render(request, "accounts/plan_link_invalid.html", {"message": error.message}, status=410)
    methods = _methods(request, plan.account)
    form = PlanForm(request.POST or None, methods=methods)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            method, by_hand = _chosen_method(request, form)
            try:
                plan = plan_accept_by_link(token=token, user=request.user, ip=client_ip(request),
                                           payment_method=method, pays_by_hand=by_hand)  # fmt: skip
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                return _after_setup(request, plan_down_payment_take(plan=plan, user=request.user))
        status = 400
    context = {
        "account": plan.account, **_view_context(plan_view(plan)), "form": form, "has_methods": bool(methods),
        "terms": plan_terms_text(account=plan.account, total=plan.total, grace_days=plan.grace_days),
    }  # fmt: skip
    return render(request, "accounts/plan_accept.html", context, status=status)
