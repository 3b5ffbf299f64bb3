"""factory_boy factories for the billing models. Bills are built through the services, so totals are computed."""

import datetime as dt
import itertools

import factory

from billing.bills import services
from billing.models import Biller, CustomerAccount

_bill_numbers = itertools.count(1)


class BillerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Biller
        django_get_or_create = ("slug",)

    name = "Riverside Water"
    slug = "riverside-water"
    currency = "USD"
    support_email = "help@riverside.example"
    support_phone = "+1 555 0100"


class CustomerAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerAccount

    biller = factory.SubFactory(BillerFactory)
    account_number = factory.Sequence(lambda n: f"100{n:05d}")
    holder_name = factory.Faker("name")
    address_line1 = factory.Faker("street_address")
    city = "Riverside"
    postal_code = factory.Sequence(lambda n: f"9{n:04d}")
    email = factory.Sequence(lambda n: f"payer{n}@example.com")


def make_bill(account, *, amounts=(5000,), tax=0, due_in_days=14, issue=True, number=None, today=None):
    """A bill on `account` with one line per amount (minor units), issued unless issue=False."""
    today = today or dt.date.today()
    lines = [services.LineInput(description=f"Charge {i + 1}", amount=a) for i, a in enumerate(amounts)]
    if tax:
        lines.append(services.LineInput(description="Tax", amount=0, tax_amount=tax))
    bill = services.bill_create(
        account=account,
        number=number or f"B-{next(_bill_numbers):06d}",
        period_start=today - dt.timedelta(days=30),
        period_end=today - dt.timedelta(days=1),
        due_date=today + dt.timedelta(days=due_in_days),
        lines=lines,
    )
    if issue:
        bill = services.bill_issue(bill=bill)
    return bill
