"""The site's biller, and any biller by id, is read once and kept in the shared cache; a change to the biller or its
payment plan rules drops it."""

from billing.bills.selectors import biller_cached, biller_for_site
from billing.models import PlanRules
from billing.plans.selectors import plan_rules_for
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


def test_the_home_page_reads_the_biller_once_across_requests(client, biller, django_assert_num_queries, settings):
    settings.PAGE_CACHE_SECONDS = 0  # the biller cache alone (a cached page runs none either: test_pagecache.py)
    client.get("/")
    with django_assert_num_queries(0):
        assert biller.name in client.get("/").content.decode()


def test_a_biller_by_id_comes_with_its_plan_rules_and_then_from_the_cache(biller, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert plan_rules_for(biller_cached(biller.pk)).enabled is False  # no rules saved: the defaults, plans off
    with django_assert_num_queries(0):
        cached = biller_cached(biller.pk)
        assert cached.name == biller.name and plan_rules_for(cached).enabled is False


def test_turning_plans_on_or_renaming_the_biller_drops_its_cached_copy(biller):
    biller_cached(biller.pk)
    rules = PlanRules.objects.create(biller=biller, enabled=True, self_service=True)
    assert plan_rules_for(biller_cached(biller.pk)).enabled is True
    rules.enabled = False
    rules.save()
    assert plan_rules_for(biller_cached(biller.pk)).enabled is False
    rules.delete()
    biller.name = "Riverside Water, renamed"
    biller.save()
    assert biller_cached(biller.pk).name == "Riverside Water, renamed"

