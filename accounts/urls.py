from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("link/", views.account_link, name="link"),
    path("accounts/<int:account_id>/", views.account_detail, name="account"),
    path("accounts/<int:account_id>/unlink/", views.account_unlink, name="unlink"),
    path("accounts/<int:account_id>/pay/", views.account_pay, name="pay"),
    path("bills/<int:bill_id>/", views.bill_view, name="bill"),
    path("bills/<int:bill_id>/pdf/", views.bill_pdf, name="bill_pdf"),
]
