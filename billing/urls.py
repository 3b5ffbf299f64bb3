from django.urls import path

from billing.bills.views import bill_pdf, bill_print

from . import views

app_name = "billing"

urlpatterns = [
    path("", views.home, name="home"),
    path("pay/", views.pay_lookup, name="pay"),
    path("pay/account/", views.pay_account, name="pay_account"),
    path("pay/b/<str:token>/", views.pay_link, name="pay_link"),
    path("pay/account/quote/", views.pay_quote, name="pay_quote"),
    path("pay/account/start/", views.pay_start, name="pay_start"),
    path("pay/account/confirm/", views.pay_confirm, name="pay_confirm"),
    path("pay/account/bank/", views.pay_bank, name="pay_bank"),
    path("pay/return/", views.pay_return, name="pay_return"),
    path("pay/receipt/<str:confirmation_number>/", views.pay_receipt, name="pay_receipt"),
    path("pay/receipt/<str:confirmation_number>/pdf/", views.pay_receipt_pdf, name="pay_receipt_pdf"),
    path("pay/receipt/<str:confirmation_number>/enrol/", views.pay_receipt_enrol, name="pay_receipt_enrol"),
    path("staff/bills/<int:pk>/print/", bill_print, name="staff_bill_print"),
    path("staff/bills/<int:pk>/pdf/", bill_pdf, name="staff_bill_pdf"),
]

# Online payments: the gateway's webhook.
from billing.payments import webhooks  # noqa: E402 - appended to keep the edit to this shared file an append

urlpatterns += [path("stripe/webhook/", webhooks.stripe_webhook, name="stripe_webhook")]
