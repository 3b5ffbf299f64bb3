"""Enrolment invitations: e-mailed, single-use, expiring links that enrol one customer account in the portal (join),
in paperless bills, or in autopay. Services write, selectors read; views, admin and the task each call one of them.

The link carries a random token (secrets.token_urlsafe(32): 256 bits). Only its SHA-256 is stored, so the database
alone opens nothing, and a link is found by the hash of what the visitor brings. Unknown, tampered, used, expired and
revoked links all look the same to the visitor: one page, one status, one "send me a new link" button that mails a
fresh link to the address on file for the account (never to an address the visitor types), rate limited.

Decisions, in one place:

- Re-sending never mails a duplicate. An account has at most one live (pending or sent) link per kind; a database
  constraint holds it. A batch skips an account whose live link went to the address still on file and counts it as
  "already invited". If the address on file changed since, the old link is revoked and a fresh one goes to the new
  address. "Send me a new link" from the invalid-link page always revokes a live link and sends a fresh one.
- A batch moves a cursor (the last account id it handled) in the same transaction that records the outcome for that
  account and sends its e-mail, under the batch's row lock. A task delivered twice, or resumed after a crash, starts
  after the cursor, so no account is mailed twice by one batch. The price: if the process dies after the SMTP server
  took a message but before the commit, that message's link is dead (its hash was rolled back) and the account is
  mailed again. The payer then has one working link and one that offers a new one.
- A refusal by the mail server for that recipient (SMTPRecipientsRefused, a 4xx/5xx reply) marks the invitation
  bounced. A transport failure (connection refused, server gone) is ours: it rolls back that account and is raised,
  so the task retries it later.
- Nothing is consumed on GET: mail scanners open links. Paperless is one POST, no login needed (it can only send the
  account's bills by e-mail to the address the invitation went to). Join and autopay need a login; the link then
  adds exactly one AccountLink. It never changes a login's e-mail address or payment methods.
- A forwarded link grants nothing by itself. When the signed-in login holds the invited address, verified, the
  account is linked without another click. A login of any other address (accounts are shared: a couple, a property
  manager) must pass the same protected lookup as /me/link/ (account number plus the biller's second factor, same
  limits, same message for every miss) before the invited account is linked. Signing up from the link verifies the
  address like any sign-up (allauth's e-mail): opening the link proves nothing about who opened it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import smtplib
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from billing.clock import biller_zone, datetime_display
from billing.enrolment.links import token_hash, token_new
from billing.enrolment.paperless import paperless_consent_text, paperless_enroll
from billing.errors import ApplicationError
from billing.events import status_move
from billing.models import CustomerAccount, ImportBatch
from billing.ratelimit import rate_limit_hit, rate_limit_key

from .models import AccountLink, Invitation, InvitationBatch, InvitationKind, User
from .services import account_link_grant

logger = logging.getLogger(__name__)

VALID_DAYS = settings.INVITATION_VALID_DAYS
CHUNK_SIZE = 500  # accounts read per keyset query
RUN_LIMIT = 2000  # accounts per task run; the task re-enqueues itself for the rest, so no run nears the time limit

# "Send me a new link": per client IP, and per account and kind (the second is silent, so it tells nothing).
RENEW_IP_LIMIT = 5
RENEW_IP_WINDOW = 60 * 60
RENEW_ACCOUNT_LIMIT = 1
RENEW_ACCOUNT_WINDOW = 15 * 60

SESSION_KEY = "billpay_invitation"  # the invitation (pk) a browser opened, to finish after signing in or up


class Outcome:
    SENT = "sent"
    BOUNCED = "bounced"
    NO_EMAIL = "no_email"
    ALREADY_INVITED = "already_invited"


class InvitationRenewLocked(ApplicationError):
    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__(
            _("Too many requests for new links from this connection. Please try again in %(minutes)d minutes.")
            % {"minutes": minutes}
        )


# --- Tokens and links -------------------------------------------------------------------------------------------------


def invitation_url(token: str) -> str:
    return f"{settings.SITE_URL}{reverse('accounts:invitation', args=[token])}"


def _transition(invitation: Invitation, status: str, **fields) -> None:
    status_move(
        invitation, status,
        error=lambda: _("This invitation is %(status)s and cannot become %(new)s.")
        % {"status": invitation.get_status_display(), "new": Invitation.Status(status).label},
        update_fields=["status", *fields],
        record=lambda from_status: logger.info("invitation %s: %s → %s", invitation.pk, from_status, status),
        changes=fields,
    )  # fmt: skip


def _batch_move(batch: InvitationBatch, to: str, **fields) -> None:
    status_move(
        batch, to,
        error=lambda: f"An invitation batch cannot go from {batch.status} to {to}.",
        update_fields=["status", *fields],
        changes=fields,
    )  # fmt: skip


# --- Selectors --------------------------------------------------------------------------------------------------------


def invitation_usable(invitation: Invitation | None, *, now: dt.datetime | None = None) -> bool:
    now = now or timezone.now()
    return invitation is not None and invitation.status == Invitation.Status.SENT and invitation.expires_at > now


def invitation_get(*, token: str, now: dt.datetime | None = None) -> Invitation | None:
    """The invitation this link opens, or None whatever the reason (unknown, tampered, used, expired, revoked)."""
    invitation = (
        Invitation.objects.select_related("customer_account__biller").filter(token_hash=token_hash(token)).first()
    )
    return invitation if invitation_usable(invitation, now=now) else None


def invitation_get_by_pk(*, pk, now: dt.datetime | None = None) -> Invitation | None:
    if not isinstance(pk, int):
        return None
    invitation = Invitation.objects.select_related("customer_account__biller").filter(pk=pk).first()
    return invitation if invitation_usable(invitation, now=now) else None


def invitation_email_matches(*, invitation: Invitation, user: User) -> bool:
    """Whether the login holds the invited address, verified (its main address or another one it added)."""
    from allauth.account.models import EmailAddress

    return EmailAddress.objects.filter(user=user, email__iexact=invitation.email, verified=True).exists()


def invitation_batch_accounts(*, batch: InvitationBatch) -> QuerySet[CustomerAccount]:
    """The accounts a batch invites: the picked ones, or every account of an imported file (created by it, or
    billed by it)."""
    if batch.import_batch_id:
        return CustomerAccount.objects.filter(
            Q(import_batch_id=batch.import_batch_id) | Q(bills__import_batch_id=batch.import_batch_id)
        ).distinct()
    return CustomerAccount.objects.filter(pk__in=batch.account_ids or [])


def _batch_ids_after(*, batch: InvitationBatch, cursor: int, limit: int) -> list[int]:
    if batch.import_batch_id:
        return list(
            invitation_batch_accounts(batch=batch)
            .filter(pk__gt=cursor)
            .order_by("pk")
            .values_list("pk", flat=True)[:limit]
        )
    # Picked ids are stored sorted: slice the list instead of sending one huge IN (...) per chunk.
    return [pk for pk in batch.account_ids if pk > cursor][:limit]


def masked_email(email: str) -> str:
    """j•••@example.com: enough for the payer to recognise their address, not enough to read someone else's."""
    local, _sep, domain = (email or "").partition("@")
    return f"{local[:1]}•••@{domain}" if domain else "•••"


# --- Sending ---------------------------------------------------------------------------------------------------------


def _email_context(*, invitation: Invitation, token: str) -> dict:
    account = invitation.customer_account
    biller = account.biller
    zone = biller_zone(biller)
    return {
        "invitation": invitation,
        "kind": invitation.kind,
        "account": account,
        "biller": biller,
        "url": invitation_url(token),
        "expires_at": timezone.localtime(invitation.expires_at, zone),
        # On the biller's clock with its zone named; a template's |date would show it in the server's zone (UTC).
        "expires": datetime_display(invitation.expires_at, biller=biller),
        "time_zone": str(zone),
        "valid_days": VALID_DAYS,
        "LANGUAGE_CODE": translation.get_language(),
        "LANGUAGE_BIDI": translation.get_language_bidi(),
    }


def _send_email(*, invitation: Invitation, token: str) -> None:
    account = invitation.customer_account
    with translation.override(account.language or settings.LANGUAGE_CODE):
        context = _email_context(invitation=invitation, token=token)
        subject = render_to_string("accounts/email/invitation_subject.txt", context).strip()
        text = render_to_string("accounts/email/invitation.txt", context)
        html = render_to_string("accounts/email/invitation.html", context)
    message = EmailMultiAlternatives(subject, text, account.biller.email_sender(), [invitation.email])
    message.attach_alternative(html, "text/html")
    message.send()


@dataclass(frozen=True)
class IssueResult:
    outcome: str
    invitation: Invitation | None


@transaction.atomic
def invitation_issue(
    *,
    account: CustomerAccount,
    kind: str,
    created_by: User | None = None,
    batch: InvitationBatch | None = None,
    replace: bool = False,
    now: dt.datetime | None = None,
) -> IssueResult:
    """Create one invitation for `account` and e-mail it to the address on file.

    With replace=False (staff sends) an account whose live link of this kind went to the same address is skipped
    (ALREADY_INVITED). With replace=True ("send me a new link") the live link is revoked and a fresh one sent.
    Raises OSError (a transport failure) after rolling back, so the caller can retry.
    """
    if kind not in InvitationKind.values:
        raise ValueError(f"unknown invitation kind {kind!r}")
    now = now or timezone.now()
    account = CustomerAccount.objects.select_for_update(of=("self",)).select_related("biller").get(pk=account.pk)
    email = (account.email or "").strip()
    for live in Invitation.objects.select_for_update().filter(
        customer_account=account, kind=kind, status__in=Invitation.LIVE_STATUSES
    ):
        if live.status == Invitation.Status.SENT and live.expires_at <= now:
            _transition(live, Invitation.Status.EXPIRED)
        elif not replace and live.status == Invitation.Status.SENT and live.email.lower() == email.lower():
            return IssueResult(Outcome.ALREADY_INVITED, live)
        else:  # a new address on file, a fresh link asked for, or one stuck half-sent
            _transition(live, Invitation.Status.REVOKED)
    token, digest = token_new()
    invitation = Invitation.objects.create(
        customer_account=account,
        kind=kind,
        email=email,
        token_hash=digest,
        batch=batch,
        created_by=created_by,
        expires_at=now + dt.timedelta(days=VALID_DAYS),
    )
    if not email:
        _transition(invitation, Invitation.Status.NO_EMAIL)
        return IssueResult(Outcome.NO_EMAIL, invitation)
    try:
        _send_email(invitation=invitation, token=token)
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException, smtplib.SMTPNotSupportedError) as refusal:
        _transition(invitation, Invitation.Status.BOUNCED, error=_smtp_error(refusal))
        logger.warning("invitation %s to account %s bounced: %s", invitation.pk, account.pk, invitation.error)
        return IssueResult(Outcome.BOUNCED, invitation)
    _transition(invitation, Invitation.Status.SENT, sent_at=timezone.now())
    return IssueResult(Outcome.SENT, invitation)


def _smtp_error(error: Exception) -> str:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        parts = [f"{code} {msg.decode(errors='replace') if isinstance(msg, bytes) else msg}" for code, msg in
                 error.recipients.values()]  # fmt: skip
        text = "; ".join(parts) or "recipient refused"
    elif isinstance(error, smtplib.SMTPResponseException):
        message = error.smtp_error
        text = f"{error.smtp_code} {message.decode(errors='replace') if isinstance(message, bytes) else message}"
    else:
        text = str(error) or error.__class__.__name__
    return text[:300]


# --- Batches ---------------------------------------------------------------------------------------------------------


def invitation_batch_start(
    *,
    kind: str,
    created_by: User | None,
    accounts: QuerySet[CustomerAccount] | None = None,
    import_batch: ImportBatch | None = None,
) -> InvitationBatch:
    """Record a bulk send (picked accounts, or one imported file) and hand it to a worker once this commits."""
    from .tasks import invitation_batch_send_task  # tasks import this module

    if kind not in InvitationKind.values:
        raise ValueError(f"unknown invitation kind {kind!r}")
    if (accounts is None) == (import_batch is None):
        raise ValueError("give either accounts or import_batch")
    batch = InvitationBatch(kind=kind, created_by=created_by, import_batch=import_batch)
    if accounts is not None:
        batch.account_ids = sorted(set(accounts.values_list("pk", flat=True)))
        batch.total = len(batch.account_ids)
    else:
        batch.total = invitation_batch_accounts(batch=batch).count()
    if not batch.total:
        raise ApplicationError(_("There are no customer accounts to invite."))
    batch.save()
    logger.info("invitation batch %s: %s accounts, %s, by %s", batch.pk, batch.total, kind, created_by)
    invitation_batch_send_task.delay_on_commit(batch.pk)
    return batch


_COUNTER = {
    Outcome.SENT: "sent",
    Outcome.BOUNCED: "failed",
    Outcome.NO_EMAIL: "skipped_no_email",
    Outcome.ALREADY_INVITED: "skipped_already_invited",
}


def invitation_batch_run(*, batch_id: int, limit: int = RUN_LIMIT, now: dt.datetime | None = None) -> bool:
    """Send the next `limit` invitations of a batch. Returns True when the batch is finished.

    Safe to run twice at once or again after a crash: each account is handled in its own transaction under the
    batch's row lock, and only if it lies after the cursor, which that same transaction moves past it.
    """
    batch = InvitationBatch.objects.filter(pk=batch_id).first()
    if batch is None or batch.status == InvitationBatch.Status.DONE:
        return True
    if batch.status == InvitationBatch.Status.PENDING:
        with transaction.atomic():
            locked = InvitationBatch.objects.select_for_update().get(pk=batch_id)
            if locked.status == InvitationBatch.Status.PENDING:
                _batch_move(locked, InvitationBatch.Status.RUNNING)
    handled = 0
    cursor = batch.cursor
    while handled < limit:
        ids = _batch_ids_after(batch=batch, cursor=cursor, limit=min(CHUNK_SIZE, limit - handled))
        if not ids:
            _batch_finish(batch_id=batch_id)
            return True
        for account_id in ids:
            _batch_handle_one(batch_id=batch_id, account_id=account_id, now=now)
        cursor = ids[-1]
        handled += len(ids)
    return False


def _batch_handle_one(*, batch_id: int, account_id: int, now: dt.datetime | None) -> None:
    with transaction.atomic():
        batch = InvitationBatch.objects.select_for_update().get(pk=batch_id)
        if batch.cursor >= account_id:  # another delivery of the task handled it
            return
        account = CustomerAccount.objects.filter(pk=account_id).first()
        fields = ["cursor", "processed"]
        if account is not None:  # deleted since the batch was made: count it as processed, nothing to send
            try:
                with transaction.atomic():
                    result = invitation_issue(
                        account=account, kind=batch.kind, created_by=batch.created_by, batch=batch, now=now
                    )
            except IntegrityError:
                # A live link of this kind appeared in a parallel transaction (another batch, a renewal).
                outcome = Outcome.ALREADY_INVITED
            else:
                outcome = result.outcome
            counter = _COUNTER[outcome]
            setattr(batch, counter, getattr(batch, counter) + 1)
            fields.append(counter)
        batch.cursor = account_id
        batch.processed += 1
        batch.save(update_fields=fields)


def _batch_finish(*, batch_id: int) -> None:
    with transaction.atomic():
        batch = InvitationBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status != InvitationBatch.Status.DONE:
            _batch_move(batch, InvitationBatch.Status.DONE, finished_at=timezone.now())
            logger.info(
                "invitation batch %s done: %s sent, %s bounced, %s without e-mail, %s already invited",
                batch.pk, batch.sent, batch.failed, batch.skipped_no_email, batch.skipped_already_invited,
            )  # fmt: skip


# --- Using a link -----------------------------------------------------------------------------------------------------


def _lock_usable(invitation: Invitation, *, kinds: tuple[str, ...], now: dt.datetime | None) -> Invitation:
    locked = (
        Invitation.objects.select_for_update(of=("self",)).select_related("customer_account__biller").get(pk=invitation.pk)
    )
    if not invitation_usable(locked, now=now) or locked.kind not in kinds:
        raise ApplicationError(_("This link has already been used or has expired."))
    return locked


@transaction.atomic
def invitation_accept_link(*, invitation: Invitation, user: User, now: dt.datetime | None = None) -> AccountLink:
    """A join or autopay link opened by a login that holds the invited address, verified: link the invited account
    to it (only that), and use the link up. Any other login must pass the lookup (invitation_accept_by_lookup):
    holding a forwarded link is not enough."""
    locked = _lock_usable(invitation, kinds=(InvitationKind.JOIN, InvitationKind.AUTOPAY), now=now)
    if not invitation_email_matches(invitation=locked, user=user):
        raise ApplicationError(_("This invitation was sent to another e-mail address."))
    link, _created = account_link_grant(user=user, account=locked.customer_account, via=AccountLink.Via.INVITED_EMAIL)
    _transition(locked, Invitation.Status.USED, used_at=now or timezone.now(), used_by=user)
    return link


def invitation_accept_by_lookup(
    *, invitation: Invitation, user: User, account_number: str, factor, ip: str, now: dt.datetime | None = None
) -> AccountLink:
    """A join or autopay link opened by a login of another address: link the invited account only after the same
    protected lookup as /me/link/ (its rate limits, and one message whether the number is unknown, the factor is
    wrong or the details are another account's). Raises ApplicationError (AccountLinkLocked when rate limited)."""
    from .services import NOT_FOUND_MESSAGE, account_link_lookup

    account = account_link_lookup(
        account_number=account_number, factor=factor, ip=ip, biller=invitation.customer_account.biller
    )
    if account.pk != invitation.customer_account_id:
        raise ApplicationError(_(NOT_FOUND_MESSAGE))
    with transaction.atomic():
        locked = _lock_usable(invitation, kinds=(InvitationKind.JOIN, InvitationKind.AUTOPAY), now=now)
        link, _created = account_link_grant(user=user, account=locked.customer_account, via=AccountLink.Via.LOOKUP)
        _transition(locked, Invitation.Status.USED, used_at=now or timezone.now(), used_by=user)
    logger.info("invitation %s sent to another address was used by user %s after the lookup", locked.pk, user.pk)
    return link


@transaction.atomic
def invitation_accept_paperless(
    *, invitation: Invitation, ip: str, user: User | None = None, now: dt.datetime | None = None
) -> Invitation:
    """A paperless link: bills for the account go by e-mail to the invited address. No login needed."""
    locked = _lock_usable(invitation, kinds=(InvitationKind.PAPERLESS,), now=now)
    paperless_enroll(
        account=locked.customer_account,
        email=locked.email,
        consent_text=paperless_consent_text(account=locked.customer_account),
        ip=ip,
        via="invitation",
        user=user if user is not None and user.is_authenticated else None,
    )
    _transition(
        locked,
        Invitation.Status.USED,
        used_at=now or timezone.now(),
        used_by=user if user is not None and user.is_authenticated else None,
    )
    return locked


def invitation_revoke(*, invitation: Invitation, actor: User | None = None) -> bool:
    """Staff withdraw a live link. Returns False when it was not live."""
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if locked.status not in Invitation.LIVE_STATUSES:
            return False
        _transition(locked, Invitation.Status.REVOKED)
    logger.info("invitation %s revoked by %s", invitation.pk, actor.pk if actor else "system")
    return True


# --- "Send me a new link" ---------------------------------------------------------------------------------------------


def invitation_renew(*, token: str, ip: str, now: dt.datetime | None = None) -> None:
    """Mail a fresh link for the invitation this (used, expired or unknown) token belonged to, to the address on file
    for its account. Silent whatever happens, so the page says the same for a real token and a made-up one.
    Raises InvitationRenewLocked when this IP asked too often (that says nothing about the token)."""
    count, left = rate_limit_hit(rate_limit_key("invite-renew", "ip", ip or "unknown"), RENEW_IP_WINDOW)
    if count > RENEW_IP_LIMIT:
        raise InvitationRenewLocked(left)
    old = Invitation.objects.select_related("customer_account").filter(token_hash=token_hash(token)).first()
    if old is None or old.status in (Invitation.Status.NO_EMAIL,):
        return
    account_key = rate_limit_key("invite-renew", "acct", f"{old.customer_account_id}:{old.kind}")
    account_count, _left = rate_limit_hit(account_key, RENEW_ACCOUNT_WINDOW)
    if account_count > RENEW_ACCOUNT_LIMIT:
        logger.info("invitation renewal for account %s throttled", old.customer_account_id)
        return
    try:
        result = invitation_issue(account=old.customer_account, kind=old.kind, replace=True, now=now)
    except (OSError, IntegrityError):
        logger.exception("invitation renewal for account %s failed", old.customer_account_id)
        return
    logger.info("invitation %s renewed: %s", old.pk, result.outcome)
