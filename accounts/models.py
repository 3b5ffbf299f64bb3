from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.utils.translation import gettext_lazy as _

from billing.models.base import TransitionsMixin


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra_fields):
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra_fields)


class User(AbstractUser):
    """A portal login, staff or payer. The e-mail address is the identifier; there is no username."""

    username = None
    first_name = None
    last_name = None
    name = models.CharField(_("name"), max_length=200, blank=True)
    email = models.EmailField(_("e-mail address"), unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self):
        return self.email

    def get_full_name(self):
        return self.name or self.email

    def get_short_name(self):
        return self.name or self.email


class AccountLink(models.Model):
    """A portal login's access to one of the biller's customer accounts.

    Many-to-many on purpose: one payer can hold several accounts (home, rental flat), and one account can be shared by
    several logins (a couple, a property manager). Created only through accounts.services, after the payer proved they
    hold the account (lookup with the second factor, an enrolment invitation, or a guest payment's receipt).
    """

    class Via(models.TextChoices):
        LOOKUP = "lookup", _("Account number and second factor")
        INVITED_EMAIL = "invited_email", _("Enrolment invitation to the login's verified address")
        GUEST_CODE = "guest_code", _("Guest payment's link, address proven by an e-mailed code")
        # Made before links had to prove the address: a forwarded e-mail was enough, so they are not trusted.
        INVITATION = "invitation", _("Enrolment invitation (address not proven)")
        GUEST_RECEIPT = "guest_receipt", _("Receipt of a guest payment (address not proven)")

    # Origins that show the login holds the account: only these let a saved card pay the account.
    VERIFIED_VIA = (Via.LOOKUP, Via.INVITED_EMAIL, Via.GUEST_CODE)

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="account_links", verbose_name=_("user"))
    customer_account = models.ForeignKey(
        "billing.CustomerAccount",
        on_delete=models.CASCADE,
        related_name="links",
        verbose_name=_("customer account"),
    )
    created_at = models.DateTimeField(_("linked"), auto_now_add=True)
    created_via = models.CharField(_("linked by"), max_length=16, choices=Via.choices)

    class Meta:
        verbose_name = _("account link")
        verbose_name_plural = _("account links")
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["user", "customer_account"], name="account_link_once_per_user"),
        ]

    def __str__(self):
        return f"{self.user} → {self.customer_account}"

    @property
    def via_verified(self) -> bool:
        return self.created_via in self.VERIFIED_VIA


class InvitationKind(models.TextChoices):
    """What an enrolment invitation enrols the customer in."""

    JOIN = "join", _("the online portal")
    PAPERLESS = "paperless", _("paperless bills")
    AUTOPAY = "autopay", _("autopay")


class InvitationBatch(TransitionsMixin, models.Model):
    """One "send invitations" request by staff: picked customer accounts, or every account of an imported file.

    A Celery task walks the accounts by primary key (keyset) and moves `cursor` past each account in the same
    transaction that records its outcome, so a task delivered twice, or resumed after a crash, never mails an account
    twice. The counters are the progress staff watch; the Invitation rows pointing here are the per-recipient results.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for a worker")
        RUNNING = "running", _("Sending")
        DONE = "done", _("Finished")

    TRANSITIONS = {
        Status.PENDING: {Status.RUNNING, Status.DONE},
        Status.RUNNING: {Status.DONE},
        Status.DONE: set(),
    }

    kind = models.CharField(_("invitation to"), max_length=16, choices=InvitationKind.choices)
    import_batch = models.ForeignKey(
        "billing.ImportBatch",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="invitation_batches",
        verbose_name=_("imported file"),
    )
    # Accounts picked on the customer-account list (sorted ids). Empty when the batch is a whole imported file.
    account_ids = models.JSONField(_("picked accounts"), default=list, blank=True, editable=False)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(_("accounts"), default=0)
    processed = models.PositiveIntegerField(_("processed"), default=0)
    sent = models.PositiveIntegerField(_("sent"), default=0)
    skipped_no_email = models.PositiveIntegerField(_("no e-mail on file"), default=0)
    skipped_already_invited = models.PositiveIntegerField(_("already invited (link still valid)"), default=0)
    failed = models.PositiveIntegerField(_("bounced"), default=0)
    cursor = models.BigIntegerField(_("last account processed"), default=0, editable=False)
    created_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("sent by")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("invitation batch")
        verbose_name_plural = _("invitation batches")
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"#{self.pk} · {self.get_kind_display()} · {self.get_status_display()}"

    @property
    def percent_done(self) -> int:
        if not self.total:
            return 100 if self.status == self.Status.DONE else 0
        return min(100, round(100 * self.processed / self.total))


class Invitation(TransitionsMixin, models.Model):
    """An e-mailed, single-use, expiring link that enrols one customer account: in the portal (join), in paperless
    bills, or in autopay.

    Only the SHA-256 of the link's token is stored; the token itself exists in the e-mail and nowhere else, so a copy
    of the database opens nothing. Status changes go only through accounts.invitations, which checks TRANSITIONS.
    """

    Kind = InvitationKind

    class Status(models.TextChoices):
        PENDING = "pending", _("Being sent")
        SENT = "sent", _("Sent")
        USED = "used", _("Used")
        BOUNCED = "bounced", _("Bounced")
        NO_EMAIL = "no_email", _("No e-mail on file")
        EXPIRED = "expired", _("Expired")
        REVOKED = "revoked", _("Revoked")

    TRANSITIONS = {
        Status.PENDING: {Status.SENT, Status.BOUNCED, Status.NO_EMAIL, Status.REVOKED},
        Status.SENT: {Status.USED, Status.EXPIRED, Status.REVOKED},
        Status.USED: set(),
        Status.BOUNCED: set(),
        Status.NO_EMAIL: set(),
        Status.EXPIRED: set(),
        Status.REVOKED: set(),
    }
    LIVE_STATUSES = (Status.PENDING, Status.SENT)

    customer_account = models.ForeignKey(
        "billing.CustomerAccount",
        on_delete=models.CASCADE,
        related_name="invitations",
        verbose_name=_("customer account"),
    )
    kind = models.CharField(_("invitation to"), max_length=16, choices=Kind.choices)
    email = models.EmailField(_("sent to"), blank=True)
    token_hash = models.CharField(_("SHA-256 of the link token"), max_length=64, unique=True, editable=False)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.CharField(_("delivery error"), max_length=300, blank=True)
    batch = models.ForeignKey(
        InvitationBatch,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="invitations",
        verbose_name=_("batch"),
    )
    created_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("sent by")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires"))
    used_at = models.DateTimeField(_("used"), null=True, blank=True)
    used_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("used by")
    )

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")
        ordering = ["-created_at", "-pk"]
        constraints = [
            # At most one live link per account and kind: a re-send revokes the old link first, and two staff
            # sending at once cannot both mail the same customer.
            models.UniqueConstraint(
                fields=["customer_account", "kind"],
                condition=models.Q(status__in=["pending", "sent"]),
                name="invitation_one_live_per_account_kind",
            ),
            # A batch mails each of its accounts at most once, whatever happens to its task.
            models.UniqueConstraint(fields=["batch", "customer_account"], name="invitation_once_per_batch"),
        ]
        indexes = [models.Index(fields=["status", "expires_at"])]

    def __str__(self):
        return f"{self.get_kind_display()} · {self.customer_account_id} · {self.get_status_display()}"



class PortalSignIn(models.Model):
    """Append-only: one row per payer sign-in to the portal (staff sign-ins are not counted). The staff insight page
    counts them per biller through the sign-in's links (accounts/insight.py); nothing else reads them."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="portal_sign_ins", verbose_name=_("user"))
    created_at = models.DateTimeField(_("signed in"), auto_now_add=True)

    class Meta:
        verbose_name = _("portal sign-in")
        verbose_name_plural = _("portal sign-ins")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["created_at", "user"], name="portal_sign_in_when")]

    def __str__(self):
        return f"{self.user} · {self.created_at:%Y-%m-%d %H:%M}"
