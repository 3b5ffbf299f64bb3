"""Paperless e-bills and guest enrolment: a guest's request, its single-use links, paperless enrolments, and the
append-only enrolment history (billing/enrolment/ holds their services)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class GuestEnrollmentRequest(models.Model):
    """A guest payer asked, before or right after paying, for paperless bills and/or autopay.

    Only the choice is recorded here: nothing is enrolled until the payer confirms through the link that the
    payer-accounts flow e-mails (it sets `consumed_at`). One per payment; a later tick on the receipt adds to it."""

    payment = models.OneToOneField("billing.Payment", on_delete=models.CASCADE, related_name="enrollment_request")
    account = models.ForeignKey("billing.CustomerAccount", on_delete=models.CASCADE, related_name="enrollment_requests")
    email = models.EmailField(_("e-mail"))
    paperless = models.BooleanField(_("paperless bills"), default=False)
    autopay = models.BooleanField(_("autopay"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    consumed_at = models.DateTimeField(_("confirmed"), null=True, blank=True)

    class Meta:
        verbose_name = _("guest enrolment request")
        verbose_name_plural = _("guest enrolment requests")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["consumed_at", "created_at"])]

    def __str__(self):
        return f"{self.email} ({self.payment})"


class PaperlessEnrollment(models.Model):
    """A customer account's bills go by e-mail instead of paper. Cancelling keeps the row (consent is evidence)."""

    class Via(models.TextChoices):
        PORTAL = "portal", _("Payer portal")
        GUEST_RECEIPT = "guest_receipt", _("Receipt of a guest payment")
        INVITATION = "invitation", _("Enrolment invitation")

    account = models.ForeignKey(
        "billing.CustomerAccount",
        on_delete=models.CASCADE,
        related_name="paperless_enrollments",
        verbose_name=_("account"),
    )
    email = models.EmailField(_("bills go to"))
    consent_text = models.TextField(_("consent shown"))
    consented_at = models.DateTimeField(_("consented"))
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("login"),
    )  # fmt: skip
    via = models.CharField(_("enrolled through"), max_length=16, choices=Via.choices)
    cancelled_at = models.DateTimeField(_("back to paper"), null=True, blank=True)
    cancelled_ip = models.GenericIPAddressField(_("IP address of the cancellation"), null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("cancelled by"),
    )  # fmt: skip

    class Meta:
        verbose_name = _("paperless enrolment")
        verbose_name_plural = _("paperless enrolments")
        ordering = ["-consented_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=Q(cancelled_at__isnull=True), name="one_active_paperless_per_account"
            ),
        ]

    def __str__(self):
        return f"{self.account} → {self.email}"

    @property
    def is_active(self) -> bool:
        return self.cancelled_at is None


class EnrollmentEvent(models.Model):
    """Append-only history of saved cards, paperless and autopay changes: who, when, from where."""

    class Kind(models.TextChoices):
        CARD_ADDED = "card_added", _("Card saved")
        CARD_REMOVED = "card_removed", _("Card removed")
        CARD_ROLE = "card_role", _("Default or backup card changed")
        PAPERLESS_ON = "paperless_on", _("Paperless bills on")
        PAPERLESS_OFF = "paperless_off", _("Back to paper bills")
        AUTOPAY_ENROLLED = "autopay_enrolled", _("Autopay enrolled")
        AUTOPAY_STATUS = "autopay_status", _("Autopay status changed")

    kind = models.CharField(_("what"), max_length=32, choices=Kind.choices)
    account = models.ForeignKey(
        "billing.CustomerAccount", on_delete=models.CASCADE, null=True, blank=True, related_name="enrollment_events"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("who"),
    )  # fmt: skip
    autopay = models.ForeignKey(
        "billing.AutopayEnrollment", on_delete=models.CASCADE, null=True, blank=True, related_name="events"
    )
    from_status = models.CharField(_("from"), max_length=16, blank=True)
    to_status = models.CharField(_("to"), max_length=16, blank=True)
    message = models.CharField(_("details"), max_length=500, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    created_at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("enrolment event")
        verbose_name_plural = _("enrolment history")
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return self.get_kind_display()


class GuestEnrollmentLink(models.Model):
    """A single-use, expiring link e-mailed to a guest who asked for paperless or autopay on a payment.

    Only a SHA-256 of the token is stored; the token itself exists only in the e-mail."""

    class Purpose(models.TextChoices):
        PAPERLESS = "paperless", _("Paperless bills")
        AUTOPAY = "autopay", _("Autopay with the card just used")

    request = models.ForeignKey(GuestEnrollmentRequest, on_delete=models.CASCADE, related_name="links")
    purpose = models.CharField(_("purpose"), max_length=16, choices=Purpose.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    expires_at = models.DateTimeField(_("expires"))
    used_at = models.DateTimeField(_("used"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The one-time code that proves the mailbox before the autopay link saves a card (the link alone never does).
    # Only a keyed hash is kept; each new code replaces the last and resets its attempts.
    code_hash = models.CharField(max_length=64, blank=True, editable=False)
    code_expires_at = models.DateTimeField(_("code expires"), null=True, blank=True)
    code_attempts = models.PositiveSmallIntegerField(_("wrong codes"), default=0)
    codes_sent = models.PositiveSmallIntegerField(_("codes sent"), default=0)

    class Meta:
        verbose_name = _("guest enrolment link")
        verbose_name_plural = _("guest enrolment links")
        constraints = [
            models.UniqueConstraint(fields=["request", "purpose"], name="one_guest_link_per_purpose"),
        ]

    def __str__(self):
        return f"{self.get_purpose_display()} ({self.request})"
