"""`manage.py setup_roles`: the Clerk and Billing admin groups, created and kept up to date idempotently."""

from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

CUSTOM = {"issue_bill", "void_bill", "import_bills", "refund_payment", "record_offline_payment"}


def run() -> str:
    out = StringIO()
    call_command("setup_roles", stdout=out)
    return out.getvalue()


def codenames(group_name: str) -> set[str]:
    return set(Group.objects.get(name=group_name).permissions.values_list("codename", flat=True))


def snapshot() -> dict[str, list[int]]:
    return {g.name: sorted(g.permissions.values_list("pk", flat=True)) for g in Group.objects.all()}


@pytest.mark.django_db
def test_creates_both_groups_with_their_permissions():
    output = run()
    assert "Created group “Clerk”" in output and "Created group “Billing admin”" in output

    clerk = codenames("Clerk")
    assert {"view_bill", "view_payment", "view_customeraccount", "view_billingevent", "view_refund"} <= clerk
    assert "record_offline_payment" in clerk
    assert not clerk & {"change_bill", "add_bill", "delete_bill", "issue_bill", "void_bill", "refund_payment"}
    assert all(c.startswith("view_") or c == "record_offline_payment" for c in clerk)

    billing_admin = codenames("Billing admin")
    all_billing = set(Permission.objects.filter(content_type__app_label="billing").values_list("codename", flat=True))
    assert all_billing <= billing_admin
    assert CUSTOM <= billing_admin
    # Inviting customers and the notification outbox are billing administrators' work too; clerks only look.
    assert {"add_invitationbatch", "view_invitation", "delete_accountlink", "view_notification"} <= billing_admin
    assert {"view_invitationbatch", "view_notification"} <= clerk and "add_invitationbatch" not in clerk
    # Portal logins themselves stay with superusers.
    assert not (billing_admin | clerk) & {"add_user", "change_user", "delete_user", "view_user"}
    # Billing roles do not reach into user management or anything outside the staff apps.
    outside = Group.objects.get(name="Billing admin").permissions.exclude(
        content_type__app_label__in=("billing", "accounts", "notifications")
    )
    assert not outside.exists()


@pytest.mark.django_db
def test_running_twice_changes_nothing():
    run()
    before = snapshot()
    output = run()
    assert snapshot() == before
    assert Group.objects.filter(name__in=["Clerk", "Billing admin"]).count() == 2
    assert "up to date" in output and "Created" not in output and "Updated" not in output


@pytest.mark.django_db
def test_repairs_a_group_that_drifted():
    run()
    clerk = Group.objects.get(name="Clerk")
    clerk.permissions.remove(Permission.objects.get(codename="record_offline_payment"))
    clerk.permissions.add(Permission.objects.get(codename="void_bill"))
    output = run()
    assert "Updated group “Clerk”: 1 permissions added, 1 removed." in output
    assert "record_offline_payment" in codenames("Clerk")
    assert "void_bill" not in codenames("Clerk")


@pytest.mark.django_db
def test_group_members_get_the_permissions(django_user_model):
    run()
    clerk = django_user_model.objects.create_user(email="c@example.com", is_staff=True)
    clerk.groups.add(Group.objects.get(name="Clerk"))
    boss = django_user_model.objects.create_user(email="b@example.com", is_staff=True)
    boss.groups.add(Group.objects.get(name="Billing admin"))
    assert clerk.has_perm("billing.record_offline_payment") and clerk.has_perm("billing.view_bill")
    assert not clerk.has_perm("billing.issue_bill")
    assert all(boss.has_perm(f"billing.{c}") for c in CUSTOM)
