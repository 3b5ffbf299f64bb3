"""Admin dates on the biller's clock (issue 10, item 13): a payment received at 16:36 UTC by a biller in Chicago shows
as 10:36 a.m., not 4:36 p.m."""

import datetime as dt

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from billing.models import Payment
from billing.payments.core import confirmation_number_new
from tests.staff_support import staff_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def superclient(client, django_user_model):
    admin = django_user_model.objects.create_superuser(email="root@riverside.example", password="pw-Root-123")
    return staff_login(client, admin)


def test_the_admin_shows_times_in_the_billers_zone(superclient, account):
    cache.clear()
    account.biller.time_zone = "America/Chicago"
    account.biller.save()
    payment = Payment.objects.create(
        biller=account.biller, account=account, confirmation_number=confirmation_number_new(),
        channel=Payment.Channel.GUEST_WEB, method=Payment.Method.CARD, status=Payment.Status.SUCCEEDED,
        currency="USD", amount=5000, received_at=dt.datetime(2026, 11, 27, 16, 36, tzinfo=dt.UTC),
    )  # fmt: skip

    listing = superclient.get(reverse("admin:billing_payment_changelist")).content.decode()
    detail = superclient.get(reverse("admin:billing_payment_change", args=[payment.pk])).content.decode()

    for page in (listing, detail):
        assert "10:36 a.m." in page
        assert "4:36 p.m." not in page
    assert timezone.get_current_timezone_name() == "UTC"  # only the request saw the biller's zone
