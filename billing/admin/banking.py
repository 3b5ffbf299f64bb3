"""Staff admin for bank statements: upload a statement (its report, with progress while a worker matches a big one),
the statement lines with the unmatched queue (ranked suggestions, assign in one click, mark not ours), and the credit
history. The views parse input and call one service from billing/banking/ or billing/payments/credit.py.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from billing.banking.formats import StatementFileError
from billing.banking.selectors import statement_line_suggestions
from billing.banking.statements import (
    report_lines,
    statement_line_assign,
    statement_line_dismiss,
    statement_line_reopen,
    statement_submit,
)
from billing.errors import ApplicationError
from billing.models import AccountCreditEntry, BankStatement, Biller, CustomerAccount, StatementLine

from .mixins import ReadOnlyAdminMixin, admin_link, money_display

MAX_UPLOAD_BYTES = 30 * 1024 * 1024  # bigger statements belong in `manage.py import_statement`


class StatementUploadForm(forms.Form):
    biller = forms.ModelChoiceField(queryset=Biller.objects.order_by("name"), label=_("Biller"), empty_label=None)
    file = forms.FileField(
        label=_("Statement file"),
        help_text=_("camt.053 (XML), MT940, BAI2 or the documented CSV; the format is read from the content."),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(_("The file is too large; import it with manage.py import_statement."))
        return upload


class _StaffPermissions(ReadOnlyAdminMixin):
    """Statements and their lines are history: made by importing, changed only through the services' actions."""

    def has_view_permission(self, request, obj=None):
        return self.has_import_permission(request) or super().has_view_permission(request, obj)

    def has_import_permission(self, request) -> bool:
        return request.user.has_perm("billing.import_statements")


def _progress_message(statement: BankStatement) -> str:
    if statement.status == BankStatement.Status.PENDING:
        return gettext("Waiting for a worker to start matching…")
    return gettext("Matched %(done)s of %(total)s lines…") % {
        "done": statement.processed_lines, "total": statement.total_lines
    }


def _done(statement: BankStatement) -> bool:
    return statement.status in (BankStatement.Status.SUCCEEDED, BankStatement.Status.FAILED)


@admin.register(BankStatement)
class BankStatementAdmin(_StaffPermissions, admin.ModelAdmin):
    list_display = ("filename", "biller", "format", "status", "progress", "matched", "unmatched", "duplicate",
                    "created_by", "created_at")  # fmt: skip
    list_filter = ("status", "format", "biller")
    search_fields = ("filename", "statement_id", "sha256")
    list_select_related = ("biller", "created_by")
    change_list_template = "admin/billing/bankstatement/change_list.html"

    @admin.display(description=_("progress"))
    def progress(self, statement):
        return f"{statement.processed_lines} / {statement.total_lines}"

    @admin.display(description=_("matched"))
    def matched(self, statement):
        report = statement.report or {}
        return sum(report.get(key, 0) for key in ("matched", "partial", "over"))

    @admin.display(description=_("unmatched"))
    def unmatched(self, statement):
        return (statement.report or {}).get("unmatched", "—")

    @admin.display(description=_("already seen"))
    def duplicate(self, statement):
        return (statement.report or {}).get("duplicate", "—")

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("upload/", wrap(self.upload_view), name=f"{prefix}_upload"),
            path("<path:object_id>/status/", wrap(never_cache(self.status_view)), name=f"{prefix}_status"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_import": self.has_import_permission(request)}
        return super().changelist_view(request, extra_context)

    def _statement_or_404(self, request, object_id) -> BankStatement:
        if not self.has_view_permission(request):
            raise PermissionDenied
        statement = self.get_queryset(request).select_related("biller", "created_by").filter(pk=unquote(object_id))
        if not (statement := statement.first()):
            raise Http404
        return statement

    def upload_view(self, request):
        if not self.has_import_permission(request):
            raise PermissionDenied
        form = StatementUploadForm(request.POST or None, request.FILES or None)
        problems = []
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                statement = statement_submit(
                    biller=form.cleaned_data["biller"], filename=upload.name, content=upload.read(), actor=request.user
                )
            except StatementFileError as error:
                form.add_error("file", gettext("The file has problems. Nothing was imported."))
                problems = error.errors
            else:
                if _done(statement):
                    messages.success(request, gettext("The statement was imported and matched."))
                return HttpResponseRedirect(reverse("admin:billing_bankstatement_change", args=[statement.pk]))
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "title": gettext("Upload a bank statement"),
            "form": form, "problems": problems,
        }  # fmt: skip
        return TemplateResponse(request, "admin/billing/bankstatement/upload.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        statement = self._statement_or_404(request, object_id)
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "original": statement, "statement": statement,
            "title": str(statement), "done": _done(statement),
            "report_lines": report_lines(statement.report) if _done(statement) and "read" in statement.report else [],
            "lines_url": reverse("admin:billing_statementline_changelist") + f"?statement__id__exact={statement.pk}",
            "progress_message": _progress_message(statement),
        }  # fmt: skip
        return TemplateResponse(request, "admin/billing/bankstatement/detail.html", context)

    def status_view(self, request, object_id):
        statement = self._statement_or_404(request, object_id)
        return JsonResponse(
            {
                "status": statement.status, "total_rows": statement.total_lines,
                "processed_rows": statement.processed_lines, "percent": statement.percent_done,
                "done": _done(statement), "message": _progress_message(statement),
            }  # fmt: skip
        )


class AssignForm(forms.Form):
    account_number = forms.CharField(label=_("Account number"), max_length=40)


@admin.register(StatementLine)
class StatementLineAdmin(_StaffPermissions, admin.ModelAdmin):
    list_display = ("booking_date", "amount_shown", "status", "outcome", "counterparty_name", "remittance_short",
                    "account_link", "statement")  # fmt: skip
    list_filter = ("status", "direction", "outcome", "biller", "booking_date")
    search_fields = ("counterparty_name", "remittance", "reference", "entry_key", "end_to_end_id",
                     "account__account_number")  # fmt: skip
    list_select_related = ("statement", "account", "biller")
    actions = ["mark_not_ours", "back_to_queue"]
    change_form_template = "admin/billing/statementline/detail.html"

    @admin.display(description=_("amount"), ordering="amount")
    def amount_shown(self, line):
        return line.amount_display

    @admin.display(description=_("remittance information"))
    def remittance_short(self, line):
        return (line.remittance[:60] + "…") if len(line.remittance) > 60 else line.remittance

    @admin.display(description=_("account"))
    def account_link(self, line):
        return admin_link(line.account)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.has_import_permission(request):
            actions.pop("mark_not_ours", None)
            actions.pop("back_to_queue", None)
        return actions

    @admin.action(description=_("Mark the selected unmatched lines not ours"))
    def mark_not_ours(self, request, queryset):
        done = _each_decided(request, queryset, StatementLine.Status.UNMATCHED, statement_line_dismiss)
        messages.success(request, gettext("%(count)d line(s) marked not ours.") % {"count": done})

    @admin.action(description=_("Put the selected not-ours lines back in the queue"))
    def back_to_queue(self, request, queryset):
        done = _each_decided(request, queryset, StatementLine.Status.NOT_OURS, statement_line_reopen)
        messages.success(request, gettext("%(count)d line(s) put back in the queue.") % {"count": done})

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/assign/", wrap(require_POST(self.assign_view)), name=f"{prefix}_assign"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        line = (
            StatementLine.objects.select_related("biller", "statement", "account", "payment", "reverses", "decided_by")
            .filter(pk=unquote(object_id))
            .first()
        )
        if line is None:
            raise Http404
        waiting = line.status == StatementLine.Status.UNMATCHED
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "original": line, "line": line,
            "title": str(line), "can_decide": waiting and self.has_import_permission(request),
            "can_reopen": line.status == StatementLine.Status.NOT_OURS and self.has_import_permission(request),
            "history": line.events.select_related("actor", "payment").order_by("created_at", "pk"),
            "suggestions": [
                {**vars(s), "owed_shown": money_display(s.owed, line.biller.currency)}
                for s in statement_line_suggestions(line=line)
            ] if waiting else [],
            "assign_form": AssignForm(),
        }  # fmt: skip
        return TemplateResponse(request, self.change_form_template, context)

    def assign_view(self, request, object_id):
        """One action: assign the line to the suggested account (account id) or to an account number typed."""
        if not self.has_import_permission(request):
            raise PermissionDenied
        line = StatementLine.objects.select_related("biller").filter(pk=unquote(object_id)).first()
        if line is None:
            raise Http404
        accounts = CustomerAccount.objects.filter(biller_id=line.biller_id)
        if request.POST.get("dismiss"):
            statement_line_dismiss(line=line, actor=request.user)
            messages.success(request, gettext("Marked not ours."))
        elif request.POST.get("reopen"):
            try:
                statement_line_reopen(line=line, actor=request.user)
            except ApplicationError as error:
                messages.error(request, error.message)
            else:
                messages.success(request, gettext("Back in the queue."))
        else:
            account = (
                accounts.filter(pk=request.POST.get("account_id")).first()
                if request.POST.get("account_id", "").isdigit()
                else accounts.filter(account_number=request.POST.get("account_number", "").strip()).first()
            )
            if account is None:
                messages.error(request, gettext("No account of this biller has that number."))
            else:
                try:
                    statement_line_assign(line=line, account=account, actor=request.user)
                except ApplicationError as error:
                    messages.error(request, error.message)
                else:
                    messages.success(request, gettext("Applied to %(account)s.") % {"account": account})
        return HttpResponseRedirect(reverse("admin:billing_statementline_change", args=[line.pk]))


@admin.register(AccountCreditEntry)
class AccountCreditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The credit history, read-only for everyone: every change to an account's held credit, and where it came from."""

    list_display = ("created_at", "account", "kind", "amount_shown", "source_payment", "payment", "actor")
    list_filter = ("kind",)
    search_fields = ("account__account_number", "source_payment__confirmation_number", "message")
    list_select_related = ("account", "source_payment", "payment", "actor")

    @admin.display(description=_("amount"))
    def amount_shown(self, entry):
        return money_display(entry.signed_amount, entry.currency)


def _each_decided(request, queryset, status: str, decide) -> int:
    """A bulk action's staff decision (`decide(line=, actor=)`), line by line, on the selected lines in `status`."""
    lines = list(queryset.filter(status=status).order_by("pk"))
    for line in lines:
        decide(line=line, actor=request.user)
    return len(lines)
