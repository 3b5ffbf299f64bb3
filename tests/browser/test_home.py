import pytest
from playwright.sync_api import expect

from tests.browser.conftest import axe_serious_violations, has_horizontal_overflow
from tests.factories import BillerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_home_on_a_phone_is_usable_and_accessible(live_server, phone):
    BillerFactory(name="Riverside Water", remit_address="PO Box 1")
    phone.goto(live_server.url + "/")
    pay = phone.get_by_role("link", name="Pay a bill")
    assert pay.is_visible()
    box = pay.bounding_box()
    assert box["height"] >= 44  # a comfortable touch target
    assert not has_horizontal_overflow(phone)
    assert axe_serious_violations(phone) == []
    # The first Tab lands on the skip link, which becomes visible.
    phone.keyboard.press("Tab")
    assert phone.evaluate("document.activeElement.className") == "skip-link"
    pay.click()
    expect(phone.get_by_role("heading", name="Pay a bill")).to_be_visible()
    assert axe_serious_violations(phone) == []
    assert phone.csp_violations == []


def test_arabic_switches_the_page_to_right_to_left(live_server, phone):
    BillerFactory()
    phone.goto(live_server.url + "/")
    phone.get_by_label("Language").select_option("ar")
    phone.get_by_role("button", name="Change").click()
    phone.wait_for_load_state()
    assert phone.evaluate("document.documentElement.dir") == "rtl"
    assert phone.evaluate("document.documentElement.lang") == "ar"
    assert not has_horizontal_overflow(phone)
    assert axe_serious_violations(phone) == []
