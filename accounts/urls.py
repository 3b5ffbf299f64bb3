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
    path("invite/continue/", views.invitation_continue, name="invitation_continue"),
    path("invite/signup/", views.invitation_signup, name="invitation_signup"),
    path("invite/renew/", views.invitation_renew, name="invitation_renew"),
    path("invite/<str:token>/", views.invitation_open, name="invitation"),
]
