from django.urls import path

from .views import bank_accounts, links, payment_settings, plans, portal

app_name = "accounts"

urlpatterns = [
    path("", portal.dashboard, name="dashboard"),
    path("link/", links.account_link, name="link"),
    path("accounts/<int:account_id>/", portal.account_detail, name="account"),
    path("accounts/<int:account_id>/unlink/", links.account_unlink, name="unlink"),
    path("accounts/<int:account_id>/notices/", portal.notice_choices, name="notices"),
    path("accounts/<int:account_id>/pay/", portal.account_pay, name="pay"),
    path("bills/<int:bill_id>/", portal.bill_view, name="bill"),
    path("bills/<int:bill_id>/pdf/", portal.bill_pdf, name="bill_pdf"),
    path("invite/continue/", links.invitation_continue, name="invitation_continue"),
    path("invite/signup/", links.invitation_signup, name="invitation_signup"),
    path("invite/renew/", links.invitation_renew, name="invitation_renew"),
    path("invite/<str:token>/", links.invitation_open, name="invitation"),
]

urlpatterns += [
    path("cards/", payment_settings.payment_methods, name="payment_methods"),
    path("cards/add/", payment_settings.payment_method_add, name="payment_method_add"),
    path("cards/setup/", payment_settings.payment_method_setup, name="payment_method_setup"),
    path("cards/save/", payment_settings.payment_method_save, name="payment_method_save"),
    path("cards/<int:method_id>/default/", payment_settings.payment_method_default, name="payment_method_default"),
    path("cards/<int:method_id>/backup/", payment_settings.payment_method_backup, name="payment_method_backup"),
    path("cards/no-backup/", payment_settings.payment_method_no_backup, name="payment_method_no_backup"),
    path("cards/<int:method_id>/remove/", payment_settings.payment_method_remove, name="payment_method_remove"),
    path("accounts/<int:account_id>/autopay/", payment_settings.autopay, name="autopay"),
    path("accounts/<int:account_id>/autopay/bank/", bank_accounts.autopay_bank, name="autopay_bank"),
    path("cards/<int:method_id>/revoke/", bank_accounts.bank_mandate_revoke_view, name="bank_mandate_revoke"),
    path("accounts/<int:account_id>/autopay/pause/", payment_settings.autopay_pause, name="autopay_pause"),
    path("accounts/<int:account_id>/autopay/resume/", payment_settings.autopay_resume, name="autopay_resume"),
    path("accounts/<int:account_id>/autopay/cancel/", payment_settings.autopay_cancel, name="autopay_cancel"),
    path("accounts/<int:account_id>/paperless/", payment_settings.paperless, name="paperless"),
    path("enrol/paperless/<str:token>/", links.guest_paperless, name="guest_paperless"),
    path("enrol/autopay/<str:token>/", links.guest_autopay, name="guest_autopay"),
]

urlpatterns += [
    path("accounts/<int:account_id>/plan/", plans.plan_setup, name="plan"),
    path("plan/accept/<str:token>/", plans.plan_accept, name="plan_accept"),
]
