"""Create or update the staff roles. Safe to run on every deploy: a second run changes nothing.

Roles are groups; give a person a role by adding them to the group and ticking "staff status".
"""

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction

CLERK = "Clerk"
BILLING_ADMIN = "Billing admin"

# Beyond looking at everything, a clerk takes cash and cheques at the counter. Issuing, voiding, refunding,
# importing and inviting customers change what payers owe or receive, so they belong to billing administrators.
CLERK_EXTRA = ("record_offline_payment",)


# The apps whose models staff work with. Portal logins themselves (accounts.User) stay with superusers.
STAFF_APPS = ("billing", "accounts", "notifications")
EXCLUDED_MODELS = {("accounts", "user")}


def billing_permissions():
    # Permissions are normally created after migrate; make sure the custom ones exist even on a fresh database.
    for label in STAFF_APPS:
        create_permissions(apps.get_app_config(label), verbosity=0)
    return [
        p
        for p in Permission.objects.filter(content_type__app_label__in=STAFF_APPS).select_related("content_type")
        if (p.content_type.app_label, p.content_type.model) not in EXCLUDED_MODELS
    ]


def role_permissions() -> dict[str, set[Permission]]:
    every = set(billing_permissions())
    clerk = {p for p in every if p.codename.startswith("view_") or p.codename in CLERK_EXTRA}
    return {CLERK: clerk, BILLING_ADMIN: every}


class Command(BaseCommand):
    help = "Create or update the Clerk and Billing admin groups with their permissions on billing, portal links, invitations and notifications."

    def _say(self, text: str) -> None:
        if self.verbosity:  # -v 0 is silent, e.g. under seed_demo --json, which must print only JSON
            self.stdout.write(text)

    @transaction.atomic
    def handle(self, *args, **options):
        self.verbosity = options["verbosity"]
        for name, wanted in role_permissions().items():
            group, created = Group.objects.get_or_create(name=name)
            current = set(group.permissions.all())
            added, removed = wanted - current, current - wanted
            if added:
                group.permissions.add(*added)
            if removed:
                group.permissions.remove(*removed)
            if created:
                self._say(f"Created group “{name}” with {len(wanted)} permissions.")
            elif added or removed:
                self._say(f"Updated group “{name}”: {len(added)} permissions added, {len(removed)} removed.")
            else:
                self._say(f"Group “{name}” is up to date ({len(wanted)} permissions).")
            if not created:
                for perm in sorted(added, key=lambda p: p.codename):
                    self._say(f"  + {perm.codename}")
                for perm in sorted(removed, key=lambda p: p.codename):
                    self._say(f"  - {perm.codename}")
