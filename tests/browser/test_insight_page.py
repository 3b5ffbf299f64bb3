"""The staff insight page in Chromium at 1280 px, in English and in Arabic (right to left): charts drawn, axe-core
finds nothing serious, and the strict CSP blocks nothing."""

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import Client

from tests.billing.insight.insight_support import build
from tests.browser.conftest import axe_serious_violations
from tests.staff_support import staff_login, staff_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def clerk_page(browser, live_server, django_user_model, language):
    call_command("setup_roles", verbosity=0)
    clerk = staff_user(django_user_model, "clerk@insight.example", "Clerk")
    client = staff_login(Client(), clerk)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_cookies([
        {"name": django_settings.SESSION_COOKIE_NAME, "value": client.cookies[django_settings.SESSION_COOKIE_NAME].value,
         "url": live_server.url},
        {"name": django_settings.LANGUAGE_COOKIE_NAME, "value": language, "url": live_server.url},
    ])  # fmt: skip
    page = context.new_page()
    page.csp_violations = []
    page.on("console", lambda m: page.csp_violations.append(m.text) if "Content Security Policy" in m.text else None)
    return context, page


@pytest.mark.parametrize("language, direction", [("en", "ltr"), ("ar", "rtl")])
def test_insight_page_at_1280_px(browser, live_server, django_user_model, language, direction):
    data = build(django_user_model)
    context, page = clerk_page(browser, live_server, django_user_model, language)
    try:
        page.goto(f"{live_server.url}/admin/insight/?biller={data.biller.pk}&period=custom&start=2026-10-01"
                  f"&end=2026-10-31")  # fmt: skip
        assert page.locator("html").get_attribute("dir") == direction
        charts = page.locator("svg.insight-chart")
        assert charts.count() >= 5
        # Each chart is drawn (bars with a size) and labelled for assistive technology.
        first = charts.first
        assert first.bounding_box()["width"] > 300
        assert first.get_attribute("role") == "img" and first.locator("title").count() == 1
        assert page.locator(".insight-value").first.is_visible()
        if language == "en":
            assert page.get_by_text("$180.00").first.is_visible()  # October's collections (insight_support.py)
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1")
        assert axe_serious_violations(page) == []
        assert page.csp_violations == []
    finally:
        context.close()
