from django.urls import path

from . import staff_views, views

app_name = "billing"

urlpatterns = [
    path("", views.home, name="home"),
    path("pay/", views.pay_lookup, name="pay"),
    path("pay/account/", views.pay_account, name="pay_account"),
    path("pay/b/<str:token>/", views.pay_link, name="pay_link"),
    path("staff/bills/<int:pk>/print/", staff_views.bill_print, name="staff_bill_print"),
    path("staff/bills/<int:pk>/pdf/", staff_views.bill_pdf, name="staff_bill_pdf"),
]

# Online payments: the gateway's webhook.
from . import webhooks  # noqa: E402 - appended to keep the edit to this shared file an append

urlpatterns += [path("stripe/webhook/", webhooks.stripe_webhook, name="stripe_webhook")]
