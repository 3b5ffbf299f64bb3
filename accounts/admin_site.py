"""The staff admin site: signed in through allauth, and only with a second factor.

Django's own admin login checks a password and nothing else, with no throttling. Here the login page is allauth's
(`secure_admin_login`): rate-limited by ACCOUNT_RATE_LIMITS in the shared cache, TOTP for logins that have it. And no
admin page opens for a staff session that has not passed a second factor: such a session is sent to enrol TOTP, or
to type a current code.
"""

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from .staff import staff_second_factor_passed, staff_second_factor_redirect, staff_session_cap


class StaffAdminSite(admin.AdminSite):
    def has_permission(self, request):
        if not (super().has_permission(request) and staff_second_factor_passed(request)):
            return False
        staff_session_cap(request=request, user=request.user)
        return True

    def login(self, request, extra_context=None):
        user = request.user
        if user.is_authenticated and user.is_active and user.is_staff and not staff_second_factor_passed(request):
            return staff_second_factor_redirect(request, next_url=self._next_url(request))
        # Anonymous: off to allauth's login. Signed in and allowed: straight on; never Django's password form.
        return secure_admin_login(self._signed_in)(request)

    def _signed_in(self, request):
        return HttpResponseRedirect(self._next_url(request))

    def _next_url(self, request) -> str:
        url = request.GET.get(REDIRECT_FIELD_NAME, "")
        if url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
            return url
        return reverse("admin:index", current_app=self.name)
