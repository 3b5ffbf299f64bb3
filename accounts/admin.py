from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import PermissionDenied
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

# Registers billing's admins first (accounts' admin loads before billing's): its CustomerAccount admin is extended
# at the end of this module.
import billing.admin  # noqa: F401
from billing.errors import ApplicationError
from billing.models import CustomerAccount, ImportBatch

from . import invitations
from .models import AccountLink, Invitation, InvitationBatch, InvitationKind, User
from .services import account_link_remove


class AccountLinkRemoveMixin:
    """Staff see links and may remove them, through the service; links are made by payers, never typed in here."""

    def delete_model(self, request, obj):
        account_link_remove(link=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for link in queryset.select_related("user", "customer_account"):
            account_link_remove(link=link, actor=request.user)


class AccountLinkFormSet(BaseInlineFormSet):
    def delete_existing(self, obj, commit=True):
        if commit:
            account_link_remove(link=obj, actor=getattr(self, "actor", None))


class AccountLinkInline(admin.TabularInline):
    """On the user page: the customer accounts this login can see. Tick "Delete" to remove one."""

    model = AccountLink
    formset = AccountLinkFormSet

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.actor = request.user
        return formset
    fk_name = "user"
    extra = 0
    fields = ("customer_account", "created_via", "created_at")
    readonly_fields = fields
    verbose_name = _("linked customer account")
    verbose_name_plural = _("linked customer accounts")

    def has_add_permission(self, request, obj=None):
        return False


class CustomerAccountLinkInline(AccountLinkInline):
    """For billing's CustomerAccount admin: the portal logins that see this account.

    Added to billing's CustomerAccountAdmin at the end of this module (billing never imports accounts).
    """

    fk_name = "customer_account"
    fields = ("user", "created_via", "created_at")
    readonly_fields = fields
    verbose_name = _("portal login")
    verbose_name_plural = _("portal logins linked to this account")


@admin.register(AccountLink)
class AccountLinkAdmin(AccountLinkRemoveMixin, admin.ModelAdmin):
    list_display = ("user", "customer_account", "created_via", "created_at")
    list_filter = ("created_via",)
    search_fields = ("user__email", "customer_account__account_number", "customer_account__holder_name")
    list_select_related = ("user", "customer_account")
    fields = ("user", "customer_account", "created_via", "created_at")
    readonly_fields = fields
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    inlines = [AccountLinkInline]
    ordering = ("email",)
    list_display = ("email", "name", "is_staff", "is_active", "last_login")
    list_filter = ("is_staff", "is_superuser", "is_active", "groups")
    search_fields = ("email", "name")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Personal info"), {"fields": ("name",)}),
        (_("Permissions"), {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "name", "password1", "password2")}),)


# ---------------------------------------------------------------------------------------------------------------------
# Enrolment invitations. Staff send them from the customer-account list (an action) or for a whole imported file
# ("Add invitation batch"); a worker mails them and the batch page shows progress and every recipient's result.

SEND_PERMISSION = "accounts.add_invitationbatch"
RESULTS_SHOWN = 200


class InvitationKindForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("Invite to"),
        choices=InvitationKind.choices,
        widget=forms.RadioSelect,
        initial=InvitationKind.JOIN,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].help_text = _(
            "Each customer gets a single-use link, valid for %(days)s days, by e-mail to the address on file. "
            "Customers with a valid link of the same kind to that address are not sent another."
        ) % {"days": invitations.VALID_DAYS}


class InvitationImportForm(InvitationKindForm):
    import_batch = forms.ModelChoiceField(
        label=_("Imported file"),
        queryset=ImportBatch.objects.filter(status=ImportBatch.Status.SUCCEEDED).select_related("biller"),
        help_text=_("Every customer account the file created or billed."),
    )


def _batch_started(request, batch):
    messages.success(
        request,
        ngettext(
            "Sending an invitation to %(count)d customer account. This page shows how it goes.",
            "Sending invitations to %(count)d customer accounts. This page shows how it goes.",
            batch.total,
        )
        % {"count": batch.total},
    )
    return HttpResponseRedirect(reverse("admin:accounts_invitationbatch_change", args=[batch.pk]))


@admin.action(description=_("Send invitation…"))
def invitation_send_action(modeladmin, request, queryset):
    """For CustomerAccountAdmin: choose join, paperless or autopay on a second page, then start a batch."""
    if not request.user.has_perm(SEND_PERMISSION):
        raise PermissionDenied
    form = InvitationKindForm(request.POST if "send_invitations" in request.POST else None)
    if form.is_bound and form.is_valid():
        try:
            batch = invitations.invitation_batch_start(
                kind=form.cleaned_data["kind"], created_by=request.user, accounts=queryset
            )
        except ApplicationError as error:
            modeladmin.message_user(request, error.message, messages.ERROR)
            return None
        return _batch_started(request, batch)
    select_across = request.POST.get("select_across") == "1"
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": _("Send invitations"),
        "opts": modeladmin.model._meta,
        "form": form,
        "count": queryset.count(),
        "selected_ids": [] if select_across else request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": select_across,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "action": "invitation_send_action",
        "submit_name": "send_invitations",
    }
    return TemplateResponse(request, "admin/accounts/invitation_send.html", context)


class InvitationResultInline(admin.TabularInline):
    model = Invitation
    fk_name = "batch"
    extra = 0
    can_delete = False
    max_num = 0
    fields = ("customer_account", "email", "status", "error", "sent_at", "used_at")
    readonly_fields = fields
    verbose_name = _("recipient")
    verbose_name_plural = _("recipients (the first 200; the invitation list has them all)")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("customer_account")

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        base = formset.get_queryset

        def first_results(self):  # an inline cannot paginate: show the first ones, link to the full list
            queryset = base(self)
            ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:RESULTS_SHOWN])
            return queryset.filter(pk__in=ids).order_by("pk")

        formset.get_queryset = first_results
        return formset

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(InvitationBatch)
class InvitationBatchAdmin(admin.ModelAdmin):
    list_display = ("__str__", "import_batch", "status", "progress", "sent", "failed", "skipped_no_email",
                    "skipped_already_invited", "created_by", "created_at")  # fmt: skip
    list_filter = ("status", "kind")
    list_select_related = ("import_batch", "created_by")
    fields = (
        "kind", "import_batch", "status", "progress", "sent", "failed", "skipped_no_email", "skipped_already_invited",
        "created_by", "created_at", "finished_at", "all_results",
    )  # fmt: skip
    readonly_fields = fields
    inlines = (InvitationResultInline,)
    change_form_template = "admin/accounts/invitationbatch/change_form.html"

    @admin.display(description=_("progress"))
    def progress(self, batch):
        return f"{batch.processed} / {batch.total} ({batch.percent_done}%)"

    @admin.display(description=_("all recipients"))
    def all_results(self, batch):
        url = reverse("admin:accounts_invitation_changelist") + f"?batch__id__exact={batch.pk}"
        return format_html('<a href="{}">{}</a>', url, _("See every invitation of this batch"))

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def add_view(self, request, form_url="", extra_context=None):
        """"Add" means: invite every account of an imported file."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = InvitationImportForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                batch = invitations.invitation_batch_start(
                    kind=form.cleaned_data["kind"],
                    created_by=request.user,
                    import_batch=form.cleaned_data["import_batch"],
                )
            except ApplicationError as error:
                form.add_error("import_batch", error.message)
            else:
                return _batch_started(request, batch)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Invite every customer of an imported file"),
            "opts": self.opts,
            "form": form,
            "submit_name": "send_invitations",
        }
        return TemplateResponse(request, "admin/accounts/invitation_send.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        batch = self.get_object(request, object_id)
        extra_context = {**(extra_context or {}), "batch_done": batch is None or batch.status == batch.Status.DONE}
        return super().change_view(request, object_id, form_url, extra_context)


@admin.action(description=_("Revoke the selected links"))
def invitation_revoke_action(modeladmin, request, queryset):
    revoked = sum(invitations.invitation_revoke(invitation=i, actor=request.user) for i in queryset)
    modeladmin.message_user(
        request, ngettext("%(count)d link revoked.", "%(count)d links revoked.", revoked) % {"count": revoked}
    )


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Every invitation and what became of it. The link's token is never stored, so it cannot be shown."""

    list_display = ("customer_account", "kind", "email", "status", "error", "sent_at", "expires_at", "used_at",
                    "used_by", "batch")  # fmt: skip
    list_filter = ("status", "kind", "batch")
    search_fields = ("customer_account__account_number", "customer_account__holder_name", "email")
    list_select_related = ("customer_account", "used_by", "batch")
    fields = ("customer_account", "kind", "email", "status", "error", "batch", "created_by", "created_at", "sent_at",
              "expires_at", "used_at", "used_by")  # fmt: skip
    readonly_fields = fields
    actions = (invitation_revoke_action,)
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# billing's CustomerAccount admin gains the portal logins that see the account and the invitation action, first in
# the action list (before billing's paper-bills export).
_customer_account_admin = admin.site.get_model_admin(CustomerAccount)
_customer_account_admin.inlines = (*(_customer_account_admin.inlines or ()), CustomerAccountLinkInline)
_customer_account_admin.actions = (invitation_send_action, *(_customer_account_admin.actions or ()))
