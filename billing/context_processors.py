from django.utils.functional import SimpleLazyObject

from billing.bills.selectors import biller_for_site


def biller(request):
    """The biller's name and branding for every template; looked up only when a template uses it."""
    return {"biller": SimpleLazyObject(biller_for_site)}
