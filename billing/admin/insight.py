"""The staff insight page (/admin/insight/) and its CSV downloads: the numbers a biller acts on.

Thin views: parse the biller and period, call one selector (billing/insight/), render or write CSV. Staff need the
`billing.view_insight` permission (clerks and billing admins get it from `manage.py setup_roles`); the admin site's
own check (staff, second factor) comes first through `admin_view`.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import get_language_bidi
from django.utils.translation import gettext_lazy as _

from billing.clock import biller_today
from billing.errors import ApplicationError
from billing.insight.charts import cell_text, chart_build
from billing.insight.exports import deposit_csv, posting_csv, table_csv
from billing.insight.periods import CUSTOM, PERIOD_CHOICES, THIS_MONTH, Period, period_make
from billing.insight.selectors import insight_report
from billing.models import Biller

PERMISSION = "billing.view_insight"


class InsightForm(forms.Form):
    biller = forms.ModelChoiceField(queryset=Biller.objects.order_by("name"), label=_("Biller"), empty_label=None)
    period = forms.ChoiceField(choices=PERIOD_CHOICES, label=_("Period"), initial=THIS_MONTH)
    start = forms.DateField(label=_("First day"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("Last day"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        biller = data.get("biller")
        if biller is None or self.errors:
            return data
        try:
            data["period_value"] = period_make(
                kind=data.get("period") or THIS_MONTH, today=biller_today(biller), start=data.get("start"),
                end=data.get("end"),
            )  # fmt: skip
        except ApplicationError as error:
            field = "start" if data.get("period") == CUSTOM else None
            self.add_error(field, error.message)
        return data


def _form(request) -> InsightForm:
    params = request.GET.copy()
    if "biller" not in params:
        first = Biller.objects.order_by("name").values_list("pk", flat=True).first()
        if first is None:
            raise Http404("No biller yet.")
        params["biller"] = str(first)
    params.setdefault("period", THIS_MONTH)
    return InsightForm(params)


def _allowed(request) -> None:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied


def _csv_response(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def insight_view(request):
    _allowed(request)
    form = _form(request)
    report = None
    if form.is_valid():
        biller: Biller = form.cleaned_data["biller"]
        period: Period = form.cleaned_data["period_value"]
        report = insight_report(biller=biller, period=period)
        export = request.GET.get("export")
        if export:
            table = report.table(export)
            if table is None:
                raise Http404("No such table.")
            return _csv_response(table_csv(table), f"{biller.slug}-{table.slug}-{period.key}.csv")
    rtl = get_language_bidi()
    sections = []
    if report is not None:
        for section in report.sections:
            figures = [
                {"figure": f, "value": cell_text(f.value),
                 "previous": None if f.previous is None else cell_text(f.previous)}
                for f in section.figures
            ]  # fmt: skip
            tables = [
                {"table": t, "rows": [[cell_text(c) for c in row] for row in t.rows],
                 "chart": chart_build(t, rtl=rtl)}
                for t in section.tables
            ]  # fmt: skip
            sections.append({"section": section, "figures": figures, "tables": tables})
    query = request.GET.copy()
    query.pop("export", None)
    context = {
        **admin.site.each_context(request),
        "title": _("Insight"),
        "form": form,
        "report": report,
        "sections": sections,
        "query": query.urlencode(),
        "rtl": rtl,
    }
    return TemplateResponse(request, "admin/billing/insight/index.html", context)


def posting_view(request):
    """?biller=<pk>&date=YYYY-MM-DD: the daily payments posting file (also `manage.py export_payments`)."""
    _allowed(request)
    form = PostingForm(request.GET)
    if not form.is_valid():
        return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain; charset=utf-8")
    biller, day = form.cleaned_data["biller"], form.cleaned_data["date"]
    return _csv_response(posting_csv(biller=biller, day=day), f"{biller.slug}-payments-{day.isoformat()}.csv")


def deposits_view(request):
    """The insight page's biller and period: money received and refunded, day by day."""
    _allowed(request)
    form = _form(request)
    if not form.is_valid():
        return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain; charset=utf-8")
    biller, period = form.cleaned_data["biller"], form.cleaned_data["period_value"]
    return _csv_response(deposit_csv(biller=biller, period=period), f"{biller.slug}-deposits-{period.key}.csv")


class PostingForm(forms.Form):
    biller = forms.ModelChoiceField(queryset=Biller.objects.all())
    date = forms.DateField()


insight_urls = [
    path("", admin.site.admin_view(insight_view), name="billing_insight"),
    path("payments.csv", admin.site.admin_view(posting_view), name="billing_insight_posting"),
    path("deposits.csv", admin.site.admin_view(deposits_view), name="billing_insight_deposits"),
]
