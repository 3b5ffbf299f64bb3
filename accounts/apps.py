from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    default = True  # this module also holds the admin's config; "accounts" in INSTALLED_APPS means this one
    name = "accounts"
    verbose_name = _("Portal users")

    def ready(self):
        from django.contrib.auth.signals import user_logged_in

        from billing.access import payer_access_set
        from billing.insight.sources import insight_source_add

        from .access import AccountLinkAccess
        from .insight import PortalAdoption
        from .services import portal_sign_in_record
        from .staff import staff_session_shorten

        user_logged_in.connect(staff_session_shorten, dispatch_uid="accounts.staff_session_shorten")
        user_logged_in.connect(portal_sign_in_record, dispatch_uid="accounts.portal_sign_in_record")
        insight_source_add("accounts.portal", PortalAdoption())  # sign-ins and invitations on the insight page
        payer_access_set(AccountLinkAccess())  # billing asks who may pay for an account through billing.access


class StaffAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with our site as admin.site: allauth sign-in and a second factor for every staff login."""

    default = False
    default_site = "accounts.admin_site.StaffAdminSite"
