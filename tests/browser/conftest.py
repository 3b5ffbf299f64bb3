"""Headless Chromium (Debian's package) driven by Playwright's Python API. No browser is ever downloaded."""

import os
import shutil

import pytest

from tests.conftest import IN_CI

# Playwright's sync API runs an event loop in this thread; the Django ORM calls made by test code are still sync.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    if not path:
        message = "Debian's chromium is not installed (scripts/test.sh installs it with apt when it can)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def phone(browser):
    """A 360 px wide phone screen."""
    context = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    # Every message the browser logs about the Content-Security-Policy; tests assert it stays empty.
    page.csp_violations = []
    page.on(
        "console",
        lambda msg: page.csp_violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    yield page
    context.close()


def axe_serious_violations(page) -> list[dict]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [v for v in results.response["violations"] if v["impact"] in {"serious", "critical"}]


def has_horizontal_overflow(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth")


# --- Paying in the browser: live server + localstripe --------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_localstripe():
    """A localstripe process of the browser tests' own (its webhook points at this session's live server)."""
    from tests import stripe_support

    process = stripe_support.LocalstripeProcess()
    try:
        yield process.start()
    finally:
        process.stop()


def _with_origin(policy: dict, origin: str) -> dict:
    """The CSP from settings plus one more Stripe origin. Settings compute their Stripe origins at import, from the
    environment; the browser tests' localstripe gets a port only once the session runs."""
    import copy

    policy = copy.deepcopy(policy)
    for directive in ("script-src", "style-src", "frame-src", "connect-src", "img-src"):
        sources = list(policy["DIRECTIVES"].get(directive) or [])
        if origin not in sources:
            sources.append(origin)
        policy["DIRECTIVES"][directive] = sources
    return policy


@pytest.fixture
def stripe_live(browser_localstripe, live_server, settings):
    """Point the live server at localstripe (emptied), with its stripe.js allowed by the CSP and its webhook
    delivered to the live server's /stripe/webhook/. Yields localstripe's base URL."""
    from tests import stripe_support

    stripe_support.flush(browser_localstripe)
    settings.STRIPE_API_BASE = browser_localstripe
    settings.STRIPE_LIVE_API = False
    settings.STRIPE_SECRET_KEY = stripe_support.SECRET_KEY
    settings.STRIPE_PUBLISHABLE_KEY = stripe_support.PUBLISHABLE_KEY
    settings.STRIPE_WEBHOOK_SECRET = stripe_support.WEBHOOK_SECRET
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.STRIPE_JS_URL = f"{browser_localstripe}/js.stripe.com/v3/"
    settings.CONTENT_SECURITY_POLICY = _with_origin(settings.CONTENT_SECURITY_POLICY, browser_localstripe)
    settings.SITE_URL = live_server.url
    stripe_support.register_webhook(
        browser_localstripe,
        url=f"{live_server.url}/stripe/webhook/",
        secret=stripe_support.WEBHOOK_SECRET,
        webhook_id="browser",
    )
    yield browser_localstripe
