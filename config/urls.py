from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from billing.admin.insight import insight_urls
from config import health, metrics

admin.site.site_header = "Billpay staff"
admin.site.site_title = "Billpay staff"
admin.site.index_title = "Billing"

urlpatterns = [
    path("healthz/live/", health.live, name="healthz_live"),
    path("healthz/ready/", health.ready, name="healthz_ready"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/insight/", include(insight_urls)),  # before the admin's own catch-all
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("me/", include("accounts.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("notifications/", include("notifications.urls")),
    path("", include("billing.urls")),
]

if settings.DEBUG:
    from django.contrib.staticfiles.urls import staticfiles_urlpatterns

    urlpatterns += staticfiles_urlpatterns()
