"""Arabic and Persian payer pages on a 360 px phone (issue 10, item 14): no page scrolls sideways, and every
left-to-right value (phone numbers, street addresses, US$ amounts, bill numbers with hyphens, confirmation numbers) is
isolated, so "+1 555 0100" never shows as "0100 555 1+". Screenshots go to BILLPAY_SCREENSHOTS when it is set."""

import json
import os

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.bills.paylinks import bill_pay_path
from billing.models import Payment, PaymentAllocation
from billing.payments.core import confirmation_number_new
from billing.payments.receipts import receipt_token
from tests.browser.conftest import axe_serious_violations
from tests.browser.test_ebill import payer_with_bill, signed_in  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = os.environ.get("BILLPAY_SCREENSHOTS", "")

# Text that reads left to right inside a right-to-left page, and must sit in <bdi> or an element with dir="ltr".
UNISOLATED_LTR_VALUES = r"""
() => {
  const pattern = /US\$|\+\d[\d ]{6,}|\b\d+ [A-Z][a-z]+ (Rd|St|Ave)\b|\b[A-Z]{2,}-\d{4}-\d+\b|\b[A-Z0-9]{4,}-[A-Z0-9]{4,}\b/;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const bad = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest('script, style, noscript, option, [hidden]')) continue;
    // Text between LEFT-TO-RIGHT ISOLATE and POP DIRECTIONAL ISOLATE is isolated already (billing.money does that).
    const outside = node.textContent.replace(/\u2066[^\u2069]*\u2069/g, '');
    if (!pattern.test(outside)) continue;
    if (parent.closest('bdi, [dir="ltr"], input, textarea')) continue;
    bad.push(node.textContent.trim().slice(0, 60));
  }
  return bad;
}
"""


def receipt_path(account, bill) -> str:
    payment = Payment.objects.create(
        biller=account.biller, account=account, confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.GUEST_WEB, method=Payment.Method.CARD, status=Payment.Status.SUCCEEDED,
        currency="USD", amount=1999, payer_email="dana@example.com", payment_method_summary="Visa •••• 4242",
        received_at=timezone.now(),
    )  # fmt: skip
    PaymentAllocation.objects.create(payment=payment, bill=bill, amount=1999)
    url = reverse("billing:pay_receipt", args=[payment.confirmation_number])
    return f"{url}?key={receipt_token(payment)}"


@pytest.mark.parametrize("language", ["ar", "fa"])
def test_payer_pages_fit_the_phone_and_isolate_left_to_right_values(
    live_server, phone, payer_with_bill, language  # noqa: F811
):
    user, account, bill = payer_with_bill
    pages = {
        "home": reverse("billing:home"),
        "lookup": reverse("billing:pay"),
        "pay-link": bill_pay_path(bill),
        "receipt": receipt_path(account, bill),
        "dashboard": reverse("accounts:dashboard"),
        "account": reverse("accounts:account", args=[account.pk]),
        "ebill": reverse("accounts:bill", args=[bill.pk]),
        "notices": reverse("accounts:notices", args=[account.pk]),
        "cards": reverse("accounts:payment_methods"),
    }
    signed_in(phone, live_server, user, language=language)
    problems = {}
    for name, path in pages.items():
        phone.goto(live_server.url + path)
        assert phone.evaluate("document.documentElement.lang") == language, name
        if SCREENSHOTS:
            phone.screenshot(path=f"{SCREENSHOTS}/rtl-{language}-{name}.png", full_page=True)
        width = phone.evaluate("document.documentElement.scrollWidth")
        unisolated = phone.evaluate(UNISOLATED_LTR_VALUES)
        serious = [v["id"] for v in axe_serious_violations(phone)]
        if width > 360 or unisolated or serious:
            problems[name] = {"scroll_width": width, "unisolated": unisolated, "axe": serious}
    assert problems == {}, json.dumps(problems, ensure_ascii=False, indent=1)
