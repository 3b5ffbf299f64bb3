from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def home(request):
    return render(request, "billing/home.html")


@require_GET
def pay_start(request):
    """The "Pay a bill" entry point. Online card payment arrives with the guest-pay issue; until then this page
    tells the payer every way they can pay today."""
    return render(request, "billing/pay_start.html")
