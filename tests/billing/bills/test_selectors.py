"""The site's biller is read once and kept in the shared cache; a change to any biller drops it."""

from billing.bills.selectors import biller_for_site
from tests.factories import BillerFactory


def test_the_biller_is_read_once_then_served_from_the_cache(biller, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert biller_for_site().pk == biller.pk
    with django_assert_num_queries(0):
        assert biller_for_site().name == biller.name


def test_saving_the_biller_drops_the_cached_copy(biller):
    biller_for_site()
    biller.name = "Riverside Water, renamed"
    biller.save()
    assert biller_for_site().name == "Riverside Water, renamed"


def test_a_new_first_biller_and_a_deleted_one_are_seen(db, settings):
    settings.BILLPAY_BILLER_SLUG = ""
    assert biller_for_site() is None  # "no biller" is cached too
    first = BillerFactory()
    assert biller_for_site().pk == first.pk
    first.delete()
    assert biller_for_site() is None


def test_the_home_page_reads_the_biller_once_across_requests(client, biller, django_assert_num_queries):
    client.get("/")
    with django_assert_num_queries(0):
        assert biller.name in client.get("/").content.decode()
