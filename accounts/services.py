"""Services that write: linking portal logins to the biller's customer accounts, and removing those links.

A payer links an account the same way a guest finds one: the account number plus the biller's second factor, through
billing.payments.lookup.account_lookup. So linking has the guest lookup's protections and shares its counters:
attempts per IP and failures per account number, and one message whether the number is unknown or the factor is
wrong. Linking cannot become a side door for guessing account numbers.
"""

import logging

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from billing.bills.selectors import biller_for_site
from billing.errors import ApplicationError
from billing.models import Biller, CustomerAccount
from billing.payments import lookup
from notifications.models import NoticePreference

from .models import AccountLink, PortalSignIn, User
from .selectors import notice_choices

logger = logging.getLogger(__name__)

# Word for word the guest lookup's message (billing.views.NOT_FOUND_MESSAGE), so a miss reads the same everywhere.
NOT_FOUND_MESSAGE = gettext_noop("We couldn't find an account with those details. Check your bill and try again.")


class AccountLinkLocked(ApplicationError):
    """Too many attempts from this address or on this account number; nothing was tried."""

    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        minutes = lookup.LookupLocked(retry_after).minutes
        super().__init__(
            ngettext(
                "Too many attempts to find an account. For your security, please wait %(minutes)d minute and try "
                "again.",
                "Too many attempts to find an account. For your security, please wait %(minutes)d minutes and try "
                "again.",
                minutes,
            )
            % {"minutes": minutes}
        )


def account_link_grant(*, user: User, account: CustomerAccount, via: str) -> tuple[AccountLink, bool]:
    """Link `account` to `user` once ownership was proven some other way (an invitation, a guest receipt).

    Returns (link, created). Linking twice is not an error: the existing link is returned, its origin raised to
    `via` when `via` is verified and the old origin was not (the payer has now proven what the old link never did).
    """
    if via not in AccountLink.Via.values:
        raise ValueError(f"unknown link origin {via!r}")
    try:
        with transaction.atomic():
            link, created = AccountLink.objects.get_or_create(
                user=user, customer_account=account, defaults={"created_via": via}
            )
    except IntegrityError:  # a parallel request linked the same pair between our read and our insert
        link, created = AccountLink.objects.get(user=user, customer_account=account), False
    if created:
        logger.info("account link %s: user %s linked account %s via %s", link.pk, user.pk, account.pk, via)
    elif via in AccountLink.VERIFIED_VIA and not link.via_verified:
        AccountLink.objects.filter(pk=link.pk).update(created_via=via)
        logger.info("account link %s: origin %s raised to %s", link.pk, link.created_via, via)
        link.created_via = via
    return link, created


def account_link_lookup(
    *, account_number: str, factor: lookup.LookupFactor, ip: str, biller: Biller | None = None
) -> CustomerAccount:
    """The account these bill details belong to, through the guest lookup (its limits, its one message for a miss).
    Raises ApplicationError (AccountLinkLocked when rate limited). Links nothing."""
    biller = biller or biller_for_site()
    if biller is None:
        raise ApplicationError(_("Online accounts are not open yet."))
    try:
        return lookup.account_lookup(biller=biller, account_number=account_number, factor=factor, client_ip=ip)
    except lookup.LookupLocked as locked:
        raise AccountLinkLocked(locked.retry_after) from None
    except lookup.LookupFailed:
        raise ApplicationError(_(NOT_FOUND_MESSAGE)) from None


def account_link(
    *,
    user: User,
    account_number: str,
    factor: lookup.LookupFactor,
    ip: str,
    biller: Biller | None = None,
) -> tuple[AccountLink, bool]:
    """Link the account these details belong to. Raises ApplicationError (AccountLinkLocked when rate limited).

    `biller` defaults to the biller this portal runs for. Returns (link, created).
    """
    account = account_link_lookup(account_number=account_number, factor=factor, ip=ip, biller=biller)
    return account_link_grant(user=user, account=account, via=AccountLink.Via.LOOKUP)


def account_unlink(*, user: User, link: AccountLink) -> None:
    """The payer removes one of their own links. The customer account, its bills and payments are untouched."""
    if link.user_id != user.pk:
        raise ApplicationError(_("That account is not linked to your login."))
    account_link_remove(link=link, actor=user)


def account_link_remove(*, link: AccountLink, actor: User | None = None) -> None:
    """Remove a link, by its payer or by staff in the admin."""
    logger.info(
        "account link %s removed: user %s, account %s, by %s",
        link.pk,
        link.user_id,
        link.customer_account_id,
        actor.pk if actor else "system",
    )
    link.delete()


@transaction.atomic
def notice_choices_save(*, user: User, account: CustomerAccount, enabled: set[tuple[str, str]]) -> int:
    """Store the payer's choice for every kind and channel the biller allows for this account: ticked pairs on,
    the rest off. Explicit rows, so a later change of defaults never overrides what the payer chose."""
    if not AccountLink.objects.filter(user=user, customer_account=account).exists():
        raise ApplicationError(_("This account is not linked to your login."))
    grid, _facts = notice_choices(account=account)
    allowed = [(c.kind, c.channel) for c in grid if c.allowed]
    existing = {(p.kind, p.channel): p for p in NoticePreference.objects.select_for_update().filter(account=account)}
    changed = 0
    for kind, channel in allowed:
        want = (kind, channel) in enabled
        row = existing.get((kind, channel))
        if row is None:
            NoticePreference.objects.create(account=account, kind=kind, channel=channel, enabled=want)
            changed += 1
        elif row.enabled != want:
            row.enabled = want
            row.save(update_fields=["enabled", "updated_at"])
            changed += 1
    logger.info("notice choices for account %s: %s changed by user %s", account.pk, changed, user.pk)
    return changed


def portal_sign_in_record(sender, request, user, **kwargs) -> None:
    """user_logged_in receiver (accounts/apps.py): count a payer's sign-in for the staff insight page."""
    if not user.is_staff:
        PortalSignIn.objects.create(user=user)
