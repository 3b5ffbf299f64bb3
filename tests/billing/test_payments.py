"""Online payments: the quote (server-computed amounts), and the exactly-once start and result recording."""

import pytest

from billing.errors import ApplicationError
from billing.payments import payment_quote
from tests.factories import make_bill


@pytest.fixture
def two_bills(account):
    older = make_bill(account, amounts=(3000,), due_in_days=5)
    newer = make_bill(account, amounts=(7000,), due_in_days=35)
    return older, newer


class TestQuote:
    def test_full_balance_oldest_first(self, account, two_bills):
        quote = payment_quote(account=account)
        assert (quote.owed, quote.amount, quote.fee, quote.tip, quote.total) == (10000, 10000, 0, 0, 10000)
        assert quote.currency == "USD"
        assert [b.pk for b in quote.bills] == [two_bills[0].pk, two_bills[1].pk]

    def test_fee_fixed_plus_basis_points(self, account, two_bills):
        biller = account.biller
        biller.convenience_fee_fixed = 30
        biller.convenience_fee_basis_points = 250  # 2.5 %
        biller.save()
        quote = payment_quote(account=account, amount=4321)
        # 2.5 % of 43.21 = 1.08025 → 108 cents
        assert (quote.amount, quote.fee, quote.total) == (4321, 138, 4459)

    def test_partial_amount_bounds(self, account, two_bills):
        biller = account.biller
        biller.minimum_payment = 500
        biller.maximum_payment = 8000
        biller.save()
        assert payment_quote(account=account, amount=500).amount == 500
        assert payment_quote(account=account, amount=8000).amount == 8000
        with pytest.raises(ApplicationError, match="smallest payment"):
            payment_quote(account=account, amount=499)
        with pytest.raises(ApplicationError, match="largest payment"):
            payment_quote(account=account, amount=8001)
        with pytest.raises(ApplicationError, match="largest payment"):
            payment_quote(account=account)  # the full 100.00 is over the online maximum
        with pytest.raises(ApplicationError, match="more than"):
            payment_quote(account=account, amount=10001)

    def test_balance_below_minimum_only_in_full(self, account):
        make_bill(account, amounts=(60,))
        assert payment_quote(account=account).amount == 60
        assert payment_quote(account=account, amount=60).total == 60
        with pytest.raises(ApplicationError, match="only be paid in full"):
            payment_quote(account=account, amount=50)

    def test_nothing_owed(self, account):
        make_bill(account, amounts=(5000,), issue=False)  # a draft is not payable
        with pytest.raises(ApplicationError, match="nothing to pay"):
            payment_quote(account=account)

    def test_non_integer_amount_refused(self, account, two_bills):
        with pytest.raises(ApplicationError):
            payment_quote(account=account, amount="5000")
        with pytest.raises(ApplicationError):
            payment_quote(account=account, amount=50.0)

    def test_tips(self, account, two_bills):
        biller = account.biller
        with pytest.raises(ApplicationError, match="Tips are not accepted"):
            payment_quote(account=account, tip_percent=15)
        assert payment_quote(account=account, tip_amount=0).tip == 0
        biller.tips_enabled = True
        biller.tip_presets = [15, 20, 25]
        biller.save()
        quote = payment_quote(account=account, amount=3333, tip_percent=15)
        assert (quote.tip, quote.total) == (500, 3833)  # 15 % of 33.33 = 4.9995 → 5.00
        assert payment_quote(account=account, amount=3000, tip_amount=275).total == 3275
        with pytest.raises(ApplicationError, match="offered tip percentages"):
            payment_quote(account=account, tip_percent=17)
        with pytest.raises(ApplicationError, match="negative"):
            payment_quote(account=account, tip_amount=-1)
        with pytest.raises(ApplicationError, match="not both"):
            payment_quote(account=account, tip_percent=15, tip_amount=100)
