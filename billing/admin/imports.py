"""Staff admin for bill imports: the list of uploaded files, the "Upload bills" form, and a page per file that shows
its progress and, when it is done, what it created or why it was rejected.

The views parse input and call one service from billing/bills/imports.py.
"""

import csv

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import number_format
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache

from billing.bills.csv_rows import ImportFileError
from billing.bills.imports import bill_import_submit
from billing.csvsafe import csv_cell
from billing.models import Biller, ImportBatch

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # about 150,000 rows; bigger files belong in `manage.py import_bills`
ERRORS_SHOWN = 1000  # the page lists this many problems; the CSV download has all of them


class BillUploadForm(forms.Form):
    biller = forms.ModelChoiceField(queryset=Biller.objects.order_by("name"), label=_("Biller"), empty_label=None)
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_(
            "UTF-8 CSV, one row per bill line; see the import format guide. If any row has a problem, nothing is "
            "imported and every problem is listed."
        ),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(".csv"):
            raise forms.ValidationError(
                _("Upload a .csv file. Save a spreadsheet as “CSV UTF-8” first."), code="not_csv"
            )
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                _("The file is larger than %(size)s MB. Split it, or import it with manage.py import_bills.")
                % {"size": MAX_UPLOAD_BYTES // (1024 * 1024)},
                code="too_big",
            )
        return upload


def _batch_done(batch: ImportBatch) -> bool:
    return batch.status in (ImportBatch.Status.SUCCEEDED, ImportBatch.Status.FAILED)


def _progress_message(batch: ImportBatch) -> str:
    if batch.status == ImportBatch.Status.PENDING:
        return gettext("Waiting for a worker to start the import…")
    if batch.status == ImportBatch.Status.RUNNING:
        if batch.total_rows and batch.processed_rows >= batch.total_rows:
            return gettext("All rows checked. Saving the bills…")
        return gettext("Checked %(done)s of %(total)s rows…") % {
            "done": number_format(batch.processed_rows, force_grouping=True),
            "total": number_format(batch.total_rows, force_grouping=True),
        }
    return batch.get_status_display()


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = (
        "filename",
        "biller",
        "status",
        "progress",
        "accounts_created",
        "bills_created",
        "bills_skipped",
        "problems",
        "created_by",
        "created_at",
    )
    list_filter = ("status", "biller")
    search_fields = ("filename", "sha256")
    list_select_related = ("biller", "created_by")
    change_list_template = "admin/billing/importbatch/change_list.html"

    # Batches are history: they are made by uploading a file, and never edited or deleted by hand.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return self.has_import_permission(request) or super().has_view_permission(request, obj)

    def has_import_permission(self, request) -> bool:
        return request.user.has_perm("billing.import_bills")

    @admin.display(description=_("progress"))
    def progress(self, batch):
        return f"{batch.processed_rows} / {batch.total_rows}"

    @admin.display(description=_("problems"))
    def problems(self, batch):
        return len(batch.errors)

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("upload/", wrap(self.upload_view), name=f"{prefix}_upload"),
            path("<path:object_id>/status/", wrap(never_cache(self.status_view)), name=f"{prefix}_status"),
            path("<path:object_id>/errors.csv", wrap(self.errors_csv_view), name=f"{prefix}_errors_csv"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_import": self.has_import_permission(request)}
        return super().changelist_view(request, extra_context)

    def _batch_or_404(self, request, object_id) -> ImportBatch:
        if not self.has_view_permission(request):
            raise PermissionDenied
        batch = self.get_queryset(request).select_related("biller", "created_by").filter(pk=unquote(object_id)).first()
        if batch is None:
            raise Http404
        return batch

    def upload_view(self, request):
        if not self.has_import_permission(request):
            raise PermissionDenied
        form = BillUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                batch = bill_import_submit(
                    biller=form.cleaned_data["biller"],
                    filename=upload.name,
                    content=upload.read(),
                    actor=request.user,
                )
            except ImportFileError as exc:
                form.add_error("file", exc.message)
            else:
                if batch.status == ImportBatch.Status.SUCCEEDED:
                    messages.success(request, gettext("The file was imported."))
                elif batch.status == ImportBatch.Status.FAILED:
                    messages.error(request, gettext("The file has problems. Nothing was imported."))
                return HttpResponseRedirect(reverse("admin:billing_importbatch_change", args=[batch.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Upload bills"),
            "form": form,
        }
        return TemplateResponse(request, "admin/billing/importbatch/upload.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        batch = self._batch_or_404(request, object_id)
        errors = batch.errors or []
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": batch,
            "batch": batch,
            "title": str(batch),
            "done": _batch_done(batch),
            "progress_message": _progress_message(batch),
            "errors_shown": errors[:ERRORS_SHOWN],
            "errors_hidden": max(0, len(errors) - ERRORS_SHOWN),
            "can_import": self.has_import_permission(request),
        }
        return TemplateResponse(request, "admin/billing/importbatch/detail.html", context)

    def status_view(self, request, object_id):
        batch = self._batch_or_404(request, object_id)
        return JsonResponse(
            {
                "status": batch.status,
                "status_label": str(batch.get_status_display()),
                "total_rows": batch.total_rows,
                "processed_rows": batch.processed_rows,
                "percent": batch.percent_done,
                "done": _batch_done(batch),
                "message": _progress_message(batch),
            }
        )

    def errors_csv_view(self, request, object_id):
        batch = self._batch_or_404(request, object_id)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{batch.pk}-problems.csv"'
        response.write("\ufeff")  # so Excel opens it as UTF-8
        writer = csv.writer(response)
        writer.writerow([gettext("row"), gettext("column"), gettext("problem")])
        for error in batch.errors or []:
            writer.writerow(
                [error.get("row") or "", csv_cell(error.get("column", "")), csv_cell(error.get("message", ""))]
            )
        return response
