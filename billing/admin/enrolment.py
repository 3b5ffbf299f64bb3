"""Admin for paperless and guest enrolment (read-only: payers choose them, with their consent on record), the
enrolment event log, and the staff export of the accounts that still need paper bills."""

import csv

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.csvsafe import csv_cell
from billing.enrolment.selectors import paper_bill_accounts
from billing.models import (
    CustomerAccount,
    EnrollmentEvent,
    GuestEnrollmentLink,
    GuestEnrollmentRequest,
    PaperlessEnrollment,
)

from . import customers  # noqa: F401 - registers the CustomerAccount admin, which the end of this module extends
from .mixins import ReadOnlyAdminMixin, ReadOnlyTabularInline

PAPER_EXPORT_COLUMNS = (
    ("account_number", _("Account number")),
    ("holder_name", _("Account holder")),
    ("address_line1", _("Service address")),
    ("address_line2", _("Address line 2")),
    ("city", _("City")),
    ("region", _("Region")),
    ("postal_code", _("Postal code")),
    ("country", _("Country")),
)


def paper_bills_csv(accounts) -> HttpResponse:
    """The mailing list for paper bills, as CSV (a spreadsheet opens it; the print house imports it)."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = timezone.localdate().isoformat()
    response["Content-Disposition"] = f'attachment; filename="paper-bills-{stamp}.csv"'
    writer = csv.writer(response)
    writer.writerow([str(label) for _field, label in PAPER_EXPORT_COLUMNS])
    for account in accounts.iterator(chunk_size=2000):
        # A leading =, +, - or @ would run as a formula in a spreadsheet; names and addresses are typed by people.
        writer.writerow([csv_cell(getattr(account, name)) for name, _label in PAPER_EXPORT_COLUMNS])
    return response


@admin.action(description=_("Export the selected accounts that still need paper bills (CSV)"), permissions=["view"])
def paper_bills_export_action(modeladmin, request, queryset):
    return paper_bills_csv(paper_bill_accounts().filter(pk__in=queryset.values("pk")))


@admin.register(PaperlessEnrollment)
class PaperlessEnrollmentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("account", "email", "via", "consented_at", "cancelled_at", "user")
    list_select_related = ("account", "user")
    list_filter = ("via", ("cancelled_at", admin.EmptyFieldListFilter))
    search_fields = ("account__account_number", "account__holder_name", "email")
    date_hierarchy = "consented_at"
    change_list_template = "admin/billing/paperlessenrollment/change_list.html"

    def get_urls(self):
        return [
            path(
                "paper-bills.csv",
                self.admin_site.admin_view(self.paper_bills_view),
                name="billing_paper_bills_export",
            ),
            *super().get_urls(),
        ]

    def paper_bills_view(self, request):
        if not request.user.has_perm("billing.view_customeraccount"):
            raise PermissionDenied
        return paper_bills_csv(paper_bill_accounts())

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "paper_export_url": reverse("admin:billing_paper_bills_export")}
        return super().changelist_view(request, extra_context)


class EnrollmentEventInline(ReadOnlyTabularInline):
    model = EnrollmentEvent
    fk_name = "autopay"
    fields = ("created_at", "user", "kind", "from_status", "to_status", "message", "ip")
    readonly_fields = fields
    ordering = ("created_at", "pk")


@admin.register(EnrollmentEvent)
class EnrollmentEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "kind", "user", "account", "from_status", "to_status", "message", "ip")
    list_select_related = ("user", "account")
    list_filter = ("kind", "created_at")
    search_fields = ("user__email", "account__account_number", "message")
    date_hierarchy = "created_at"


@admin.register(GuestEnrollmentRequest)
class GuestEnrollmentRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Paperless/autopay choices guests made around a payment; confirmed (consumed) through the e-mailed link."""

    list_display = ("created_at", "email", "account", "payment", "paperless", "autopay", "consumed_at")
    list_select_related = ("account", "payment")
    list_filter = ("paperless", "autopay", ("consumed_at", admin.EmptyFieldListFilter))
    search_fields = ("email", "account__account_number", "payment__confirmation_number")
    date_hierarchy = "created_at"


@admin.register(GuestEnrollmentLink)
class GuestEnrollmentLinkAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "purpose", "request_email", "expires_at", "used_at")
    list_select_related = ("request",)
    list_filter = ("purpose", ("used_at", admin.EmptyFieldListFilter))
    search_fields = ("request__email", "request__account__account_number")
    exclude = ("token_hash",)

    @admin.display(description=_("e-mail"))
    def request_email(self, obj):
        return obj.request.email


# The export also sits on the customer account changelist as an action on the selected accounts, after the invitation
# action. Its ModelAdmin lives in customers.py (imported above); adding the action here keeps the two admins apart.
_accounts_admin = admin.site.get_model_admin(CustomerAccount)
_accounts_admin.actions = (*(_accounts_admin.actions or ()), paper_bills_export_action)
