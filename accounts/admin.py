from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.forms.models import BaseInlineFormSet
from django.utils.translation import gettext_lazy as _

from .models import AccountLink, User
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

    billing/admin.py adds it with `inlines = [..., CustomerAccountLinkInline]`.
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
