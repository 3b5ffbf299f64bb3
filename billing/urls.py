from django.urls import path

from . import staff_views, views

app_name = "billing"

urlpatterns = [
    path("", views.home, name="home"),
    path("pay/", views.pay_start, name="pay"),
    path("staff/bills/<int:pk>/print/", staff_views.bill_print, name="staff_bill_print"),
    path("staff/bills/<int:pk>/pdf/", staff_views.bill_pdf, name="staff_bill_pdf"),
]
