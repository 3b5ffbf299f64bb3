from django.urls import path

from .views import links as views

app_name = "accounts"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("link/", views.account_link, name="link"),
    path("accounts/<int:account_id>/", views.account_detail, name="account"),
    path("accounts/<int:account_id>/unlink/", views.account_unlink, name="unlink"),
    path("accounts/<int:account_id>/notices/", views.notice_choices, name="notices"),
    path("accounts/<int:account_id>/pay/", views.account_pay, name="pay"),
    path("bills/<int:bill_id>/", views.bill_view, name="bill"),
    path("bills/<int:bill_id>/pdf/", views.bill_pdf, name="bill_pdf"),
    path("invite/continue/", views.invitation_continue, name="invitation_continue"),
    path("invite/signup/", views.invitation_signup, name="invitation_signup"),
    path("invite/renew/", views.invitation_renew, name="invitation_renew"),
    path("invite/<str:token>/", views.invitation_open, name="invitation"),
]

urlpatterns += [
    path("cards/", views.payment_methods, name="payment_methods"),
    path("cards/add/", views.payment_method_add, name="payment_method_add"),
    path("cards/setup/", views.payment_method_setup, name="payment_method_setup"),
    path("cards/save/", views.payment_method_save, name="payment_method_save"),
    path("cards/<int:method_id>/default/", views.payment_method_default, name="payment_method_default"),
    path("cards/<int:method_id>/backup/", views.payment_method_backup, name="payment_method_backup"),
    path("cards/no-backup/", views.payment_method_no_backup, name="payment_method_no_backup"),
    path("cards/<int:method_id>/remove/", views.payment_method_remove, name="payment_method_remove"),
    path("accounts/<int:account_id>/autopay/", views.autopay, name="autopay"),
    path("accounts/<int:account_id>/autopay/pause/", views.autopay_pause, name="autopay_pause"),
    path("accounts/<int:account_id>/autopay/resume/", views.autopay_resume, name="autopay_resume"),
    path("accounts/<int:account_id>/autopay/cancel/", views.autopay_cancel, name="autopay_cancel"),
    path("accounts/<int:account_id>/paperless/", views.paperless, name="paperless"),
    path("enrol/paperless/<str:token>/", views.guest_paperless, name="guest_paperless"),
    path("enrol/autopay/<str:token>/", views.guest_autopay, name="guest_autopay"),
]
