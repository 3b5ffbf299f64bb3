"""Views for biller staff outside the admin: the printable bill and its PDF. Active staff with billing.view_bill only."""

from functools import wraps

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_GET

from ..models import Bill
from .documents import bill_document_get, bill_document_html, bill_pdf_response


def staff_permission_required(perm: str):
    """Not staff (or inactive), or no second factor this session: off to the admin login, as for any admin page.
    Staff without the permission: 403, not a login loop."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.has_perm(perm):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return admin.site.admin_view(wrapped)

    return decorator


@require_GET
@staff_permission_required("billing.view_bill")
def bill_print(request, pk: int):
    try:
        document = bill_document_get(bill=pk)
    except Bill.DoesNotExist:
        raise Http404 from None
    toolbar = {"pdf_url": reverse("billing:staff_bill_pdf", args=[pk])}
    response = HttpResponse(bill_document_html(document=document, request=request, extra={"toolbar": toolbar}))
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
@staff_permission_required("billing.view_bill")
def bill_pdf(request, pk: int):
    bill = get_object_or_404(Bill.objects.only("pk", "number"), pk=pk)
    return bill_pdf_response(bill=bill, actor=request.user)
