"""config/urls.py plus the notifications URLs, until the include line is added there (it is not this app's file)."""

from django.urls import include, path

from config.urls import urlpatterns as site_urlpatterns

urlpatterns = [
    path("notifications/", include("notifications.urls")),
    *[p for p in site_urlpatterns if getattr(p, "namespace", None) != "notifications"],
]
