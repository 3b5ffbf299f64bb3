"""`__any_of` (billing/lookups.py) selects what `__in` selects, on both databases: ids, foreign-key ids, text keys,
repeated values and None among them, and nothing for an empty list."""

import datetime
import re

import pytest

from billing.models import Bill, CustomerAccount
from tests.factories import BillerFactory, CustomerAccountFactory, make_bill


@pytest.mark.django_db
def test_any_of_selects_what_in_selects():
    biller = BillerFactory()
    accounts = [CustomerAccountFactory(biller=biller) for _ in range(6)]
    bills = [make_bill(account) for account in accounts[:4]]
    ids = [accounts[0].pk, accounts[2].pk, accounts[2].pk, None, accounts[5].pk, 10**9]
    cases = [
        (CustomerAccount.objects, "pk", ids),
        (CustomerAccount.objects, "pk", {a.pk for a in accounts[1:3]}),
        (CustomerAccount.objects, "account_number", [accounts[1].account_number, "?", accounts[4].account_number]),
        (Bill.objects, "account_id", [a.pk for a in accounts[1:]]),
        (Bill.objects, "pk", [bills[3].pk]),
        (CustomerAccount.objects, "pk", []),
    ]
    for manager, field, values in cases:
        expected = set(manager.filter(**{f"{field}__in": values}).values_list("pk", flat=True))
        got = set(manager.filter(**{f"{field}__any_of": values}).values_list("pk", flat=True))
        assert got == expected, (field, values)
    paid_by = Bill.objects.filter(account_id__any_of=[accounts[1].pk, accounts[3].pk])
    assert set(paid_by.values_list("pk", flat=True)) == {bills[1].pk, bills[3].pk}


@pytest.mark.django_db
def test_in_constants_selects_what_in_selects_with_the_words_in_the_statement():
    account = CustomerAccountFactory()
    for status in ("open", "paid", "void", "uncollectible"):
        Bill.objects.filter(pk=make_bill(account).pk).update(status=status)
    for values in (Bill.PAYABLE_STATUSES, ["paid"], ("open", "open", "void"), []):
        expected = set(Bill.objects.filter(status__in=values).values_list("pk", flat=True))
        query = Bill.objects.filter(status__in_constants=values)
        assert set(query.values_list("pk", flat=True)) == expected, values
    sql, params = Bill.objects.filter(status__in_constants=Bill.PAYABLE_STATUSES).query.sql_with_params()
    assert "IN ('open', 'uncollectible')" in sql
    assert not set(params) & {"open", "uncollectible"}


@pytest.mark.parametrize("value", ["open'); DELETE FROM billing_bill; --", "open uncollectible", "%s", "", None])
def test_in_constants_refuses_anything_but_plain_words(value):
    with pytest.raises(ValueError, match="plain words"):
        Bill.objects.filter(status__in_constants=["open", value])


def test_the_open_bills_partial_index_is_on_the_payable_statuses():
    (index,) = [index for index in Bill._meta.indexes if index.name == "bill_account_open"]
    assert index.condition.children == [("status__in", list(Bill.PAYABLE_STATUSES))]


def test_a_prepared_generic_plan_of_the_dashboard_balances_reads_the_open_bills_index(
    require_postgres, django_user_model
):
    """The page cache replays the dashboard's statements as one prepared statement, whose generic plan cannot see its
    parameters: with the statuses as parameters it read every bill of the payer's history to find the open ones."""
    from django.db import connection

    from accounts.models import AccountLink
    from accounts.selectors import dashboard_accounts
    from accounts.services import account_link_grant
    from billing import pagecache

    user = django_user_model.objects.create_user(email="history@example.com", password="A-history-Passw0rd!")
    biller = BillerFactory()
    for n in range(3):
        account = CustomerAccountFactory(biller=biller)
        account_link_grant(user=user, account=account, via=AccountLink.Via.LOOKUP)
        today = datetime.date(2026, 1, 1)
        Bill.objects.bulk_create(
            Bill(
                biller=biller, account=account, number=f"H{n}-{i:04d}", status="open" if i >= 298 else "paid",
                period_start=today, period_end=today, issue_date=today, due_date=today + datetime.timedelta(days=i),
                currency="USD", subtotal=1000, total=1000, amount_paid=0 if i >= 298 else 1000,
            )  # fmt: skip
            for i in range(300)
        )
    queries = []
    with pagecache._recording(queries):
        summaries = dashboard_accounts(user=user)
    assert sorted(s.balance for s in summaries) == [2000, 2000, 2000]
    (balances,) = [(sql, params) for _alias, sql, params in queries if 'SUM(("billing_bill"."total"' in sql]
    plan = _generic_plan(*balances)
    # A generic plan ($1), reading the open bills from an index (the partial one, or the statuses as an index
    # condition of the account's), not filtering every bill of the accounts' history.
    assert "$1" in plan, plan
    assert "bill_account_open" in plan or re.search(r"Index Cond: .*status", plan), plan
    assert "Rows Removed by Filter" not in plan, plan


def test_a_prepared_generic_plan_of_the_pay_screen_lists_the_oldest_ten_of_two_hundred_open_bills_from_the_index(
    transactional_db, require_postgres
):
    """The pay screen's bills, as the page cache replays them: the ten it lists are the open bills index's first ten
    entries of the account (no sort of all 200, no window over them), and the total and count one pass over them.
    On a vacuumed table, as autovacuum keeps one (VACUUM needs this test outside a transaction): until rows written
    since are vacuumed, PostgreSQL may prefer sorting the account's open bills, which costs what it did before."""
    from billing import pagecache
    from billing.payments.online import QUOTE_BILLS, open_bills_with_balance

    biller = BillerFactory()
    account, *others = [CustomerAccountFactory(biller=biller) for _ in range(21)]
    today = datetime.date(2026, 1, 1)
    Bill.objects.bulk_create(
        Bill(
            biller=biller, account=owner, number=f"P-{owner.pk}-{i:04d}", status="open" if i % 3 else "paid",
            period_start=today, period_end=today, issue_date=today, due_date=today + datetime.timedelta(days=i % 97),
            currency="USD", subtotal=1000 + i, total=1000 + i, amount_paid=0 if i % 3 else 1000 + i,
        )  # fmt: skip
        for owner in [account, *others]  # the payer's 200 open bills among 6,000 bills of 21 accounts
        for i in range(300)
    )
    queries = []
    with pagecache._recording(queries):
        bills, owed, count = open_bills_with_balance(account_id=account.pk, limit=QUOTE_BILLS)
    open_bills = Bill.objects.filter(account=account, status="open").order_by("due_date", "pk")
    assert [b.pk for b in bills] == [b.pk for b in open_bills[:QUOTE_BILLS]]
    assert (owed, count) == (sum(b.total for b in open_bills), 200)
    ((_alias, sql, params),) = queries
    plan = _generic_plan(sql, params, vacuum=True)
    assert re.search(r"\$\d", plan), plan  # generic: the account is a parameter
    assert "Sort" not in plan and "WindowAgg" not in plan, plan
    scans = re.findall(r"-> +(.*Scan.*) on billing_bill .*\(actual rows=(\d+)", plan)
    assert sorted(int(rows) for _scan, rows in scans) == [QUOTE_BILLS, 200], plan
    # The list from the open bills' index, in its order. The totals' one pass may come from another of the account's
    # indexes: PostgreSQL weighs the narrower one's heap reads against this one's width (both seen here).
    assert [scan for scan, rows in scans if int(rows) == QUOTE_BILLS][0].endswith("using bill_account_open"), plan


def _generic_plan(sql: str, params, *, vacuum: bool = False) -> str:
    """How PostgreSQL runs `sql` prepared, with a generic plan (the page cache's replays): EXPLAIN ANALYZE."""
    from django.db import connection

    from billing import pagecache

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE billing_bill" if vacuum else "ANALYZE billing_bill")
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        try:
            cursor.execute(f"PREPARE replayed AS {pagecache._numbered(sql)}")
            arguments = ", ".join(["%s"] * len(params))
            cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE replayed({arguments})", params)
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE ALL")
            cursor.execute("RESET plan_cache_mode")
