"""The staff side of bank statements: upload (report by line when the file is bad, nothing imported), the report,
the unmatched queue with its ranked suggestions, assigning in one click, marking not ours, constant query counts."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from billing.banking.statements import statement_match, statement_store
from billing.models import BankStatement, Bill, StatementLine
from tests.billing.banking.statement_support import render, sample_accounts
from tests.factories import BillerFactory
from tests.staff_support import staff_login

pytestmark = pytest.mark.django_db

UPLOAD = "admin:billing_bankstatement_upload"


@pytest.fixture
def superclient(client, admin_user):
    return staff_login(client, admin_user)


@pytest.fixture
def sample(db):
    biller = BillerFactory(currency="EUR")
    accounts = sample_accounts(biller, BillerFactory(slug="elsewhere-gas", currency="EUR"))
    return biller, accounts


def test_upload_shows_the_report(superclient, sample):
    biller, accounts = sample
    upload = SimpleUploadedFile("stmt.xml", render("camt053", accounts), content_type="application/xml")
    response = superclient.post(reverse(UPLOAD), {"biller": biller.pk, "file": upload}, follow=True)
    html = response.content.decode()
    assert "matched=3 unmatched=3 duplicate=0" in html
    statement = BankStatement.objects.get()
    assert statement.status == BankStatement.Status.SUCCEEDED


def test_a_bad_upload_lists_the_line_and_imports_nothing(superclient, sample):
    biller, accounts = sample
    content = render("mt940", accounts).replace(b":61:2611031103CR179,50", b":61:26110X1103CR179,50")
    response = superclient.post(reverse(UPLOAD), {"biller": biller.pk, "file": SimpleUploadedFile("s.sta", content)})
    assert response.status_code == 200
    assert [row[0] for row in _problem_rows(response.content.decode())] == ["10"]
    assert not BankStatement.objects.exists() and not StatementLine.objects.exists()


def _problem_rows(html: str) -> list[tuple[str, str]]:
    import re

    body = html.split('id="statement-problems"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td></tr>", body)


def test_the_queue_suggests_and_assigns_in_one_action(superclient, sample):
    biller, accounts = sample
    statement = statement_match(statement=statement_store(biller=biller, filename="s", content=render("mt940", accounts)))
    line = statement.lines.get(amount=17950)  # no reference: C owes exactly this and has the payer's name
    page = superclient.get(reverse("admin:billing_statementline_change", args=[line.pk])).content.decode()
    assert page.index(str(accounts["C"])) < page.index("Assign to this account")
    superclient.post(reverse("admin:billing_statementline_assign", args=[line.pk]), {"account_id": accounts["C"].pk})
    line.refresh_from_db()
    assert line.status == StatementLine.Status.APPLIED
    assert Bill.objects.get(account=accounts["C"]).status == Bill.Status.PAID

    other = statement.lines.get(amount=5500)
    superclient.post(reverse("admin:billing_statementline_assign", args=[other.pk]), {"dismiss": "1"})
    other.refresh_from_db()
    assert other.status == StatementLine.Status.NOT_OURS


def test_staff_put_a_not_ours_line_back_in_the_queue_and_see_its_history(superclient, sample, admin_user):
    biller, accounts = sample
    stored = statement_store(biller=biller, filename="s", content=render("mt940", accounts))
    statement = statement_match(statement=stored)
    line = statement.lines.get(amount=5500)  # another biller's reference: waiting for staff
    assign = reverse("admin:billing_statementline_assign", args=[line.pk])
    superclient.post(assign, {"dismiss": "1"})
    page = superclient.get(reverse("admin:billing_statementline_change", args=[line.pk])).content.decode()
    assert "Back to the queue" in page
    history = page.split('id="line-history"', 1)[1].split("</table>", 1)[0]
    assert history.count("<tr><td>") == 2 and "unmatched → not_ours" in history and str(admin_user) in history

    superclient.post(assign, {"reopen": "1"})
    line.refresh_from_db()
    assert line.status == StatementLine.Status.UNMATCHED
    superclient.post(assign, {"dismiss": "1"})
    superclient.post(
        reverse("admin:billing_statementline_changelist"),
        {"action": "back_to_queue", "_selected_action": [line.pk]},
    )
    line.refresh_from_db()
    assert line.status == StatementLine.Status.UNMATCHED
    assert list(line.events.order_by("pk").values_list("to_status", flat=True)) == [
        "unmatched", "not_ours", "unmatched", "not_ours", "unmatched",
    ]


@pytest.mark.parametrize("url_name", ["admin:billing_statementline_changelist", "admin:billing_bankstatement_changelist",
                                      "admin:billing_accountcreditentry_changelist"])  # fmt: skip
def test_lists_use_the_same_number_of_queries_for_one_and_three_statements(
    superclient, sample, url_name, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    biller, accounts = sample
    statement_match(statement=statement_store(biller=biller, filename="1", content=render("mt940", accounts)))
    with CaptureQueriesContext(connection) as first:
        assert superclient.get(reverse(url_name)).status_code == 200
    for n in (2, 3):
        more = sample_accounts(biller, BillerFactory(slug=f"elsewhere-{n}", currency="EUR"))
        content = render("mt940", more).replace(b"//26110", f"//{n}6110".encode())  # new bank entries
        statement_match(statement=statement_store(biller=biller, filename=str(n), content=content))
    with django_assert_max_num_queries(len(first.captured_queries)):
        assert superclient.get(reverse(url_name)).status_code == 200


def test_a_large_statement_shows_progress_then_its_report(superclient, sample, settings):
    from billing.banking.tasks import statement_match_task

    settings.STATEMENT_MATCH_INLINE_LINES = 2  # this sample's 8 lines count as large: a worker matches them
    biller, accounts = sample
    upload = SimpleUploadedFile("stmt.sta", render("mt940", accounts))
    response = superclient.post(reverse(UPLOAD), {"biller": biller.pk, "file": upload}, follow=True)
    statement = BankStatement.objects.get()
    assert statement.status == BankStatement.Status.PENDING
    assert 'id="import-progress-bar"' in response.content.decode()
    status = superclient.get(reverse("admin:billing_bankstatement_status", args=[statement.pk])).json()
    assert (status["done"], status["total_rows"], status["processed_rows"]) == (False, 8, 0)

    statement_match_task(statement.pk)  # what the worker runs after the upload commits
    status = superclient.get(reverse("admin:billing_bankstatement_status", args=[statement.pk])).json()
    assert (status["done"], status["processed_rows"]) == (True, 8)
    page = superclient.get(reverse("admin:billing_bankstatement_change", args=[statement.pk])).content.decode()
    assert "matched=3 unmatched=3 duplicate=0" in page


def test_staff_pay_held_credit_back_from_the_account_page(superclient, sample):
    biller, accounts = sample
    statement_match(statement=statement_store(biller=biller, filename="s", content=render("mt940", accounts)))
    d = accounts["D"]
    page = superclient.get(reverse("admin:billing_customeraccount_change", args=[d.pk])).content.decode()
    assert "€100.00" in page and "Pay held credit back" in page and d.bank_reference_display in page
    url = reverse("admin:billing_customeraccount_credit_refund", args=[d.pk])
    too_much = superclient.post(url, {"amount": "150.00", "reference": "TRF-1"})
    assert "more than the credit held" in too_much.content.decode()
    superclient.post(url, {"amount": "60.00", "reference": "TRF-1"})
    d.refresh_from_db()
    assert d.credit_balance == 4000
