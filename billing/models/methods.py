"""Saved payment methods: the gateway's customer for a portal login, the cards and bank accounts saved to it, and the
direct-debit mandates that let a bank account be debited (billing/methods/ holds the saved-method services,
billing/payments/mandates.py the mandate's)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .base import TransitionsMixin

# The gateway's brand codes, as a payer reads them.
CARD_BRANDS = {
    "visa": "Visa",
    "mastercard": "Mastercard",
    "amex": "American Express",
    "discover": "Discover",
    "diners": "Diners Club",
    "jcb": "JCB",
    "unionpay": "UnionPay",
}


def card_brand_label(brand: str | None) -> str:
    """"American Express" for the gateway's "amex"; an unknown brand title-cased; "Card" when there is none."""
    if not brand:
        return str(_("Card"))
    return CARD_BRANDS.get(brand.lower(), brand.title())


def card_summary(brand: str | None, last4: str) -> str:
    """The short form on payments and receipts: "Visa •••• 4242"."""
    return f"{card_brand_label(brand)} •••• {last4}"


def bank_summary(bank_name: str | None, last4: str) -> str:
    """The short form of a bank account on payments and receipts: "Commerzbank •••• 3000" (never the whole IBAN)."""
    return f"{bank_name or _('Bank account')} •••• {last4}"


class GatewayCustomer(models.Model):
    """The gateway's customer object for one portal login: saved cards are attached to it."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="gateway_customer", verbose_name=_("user")
    )
    gateway_customer_id = models.CharField(_("gateway customer id"), max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("gateway customer")
        verbose_name_plural = _("gateway customers")

    def __str__(self):
        return self.gateway_customer_id


class PaymentMethod(models.Model):
    """A card or a bank account a payer saved to their login. Only the gateway's id and what we show are kept: brand,
    last 4 and expiry for a card; bank name, country, last 4 and the account holder for a bank account, which debits
    only while its mandate (`BankMandate`, one per saved bank account) is active.

    One default per login (exactly one while any card is saved: the services keep that), at most one backup, which is
    what a failed charge on the default falls back to. Removed cards stay as history with `removed_at`."""

    class Kind(models.TextChoices):
        # The gateway's payment method types. ACH (us_bank_account) would be one more bank kind: see docs/payments.md.
        CARD = "card", _("Card")
        SEPA_DEBIT = "sepa_debit", _("Bank account (SEPA Direct Debit)")

    BANK_KINDS = (Kind.SEPA_DEBIT,)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payment_methods", verbose_name=_("user")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.CARD)
    gateway_customer_id = models.CharField(_("gateway customer id"), max_length=255)
    gateway_payment_method_id = models.CharField(_("gateway payment method id"), max_length=255, unique=True)
    brand = models.CharField(_("brand"), max_length=32, blank=True)
    last4 = models.CharField(_("last 4 digits"), max_length=4, blank=True)
    exp_month = models.PositiveSmallIntegerField(_("expiry month"), null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(_("expiry year"), null=True, blank=True)
    # Bank accounts: what the payer typed besides the IBAN, and what the IBAN says (never the IBAN itself).
    bank_name = models.CharField(_("bank"), max_length=100, blank=True)
    bank_country = models.CharField(_("bank country"), max_length=2, blank=True)
    holder_name = models.CharField(_("account holder"), max_length=200, blank=True)
    holder_email = models.EmailField(_("account holder's e-mail"), blank=True)
    is_default = models.BooleanField(_("default"), default=False)
    is_backup = models.BooleanField(_("backup"), default=False)
    created_at = models.DateTimeField(_("saved"), auto_now_add=True)
    removed_at = models.DateTimeField(_("removed"), null=True, blank=True)
    # Set when the card came from a guest payment on this account (the receipt's autopay link), not typed in here.
    saved_from_account = models.ForeignKey(
        "CustomerAccount",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("saved from a payment on account"),
    )

    class Meta:
        verbose_name = _("saved payment method")
        verbose_name_plural = _("saved payment methods")
        ordering = ["-is_default", "-is_backup", "-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["user"], condition=Q(is_default=True), name="one_default_payment_method_per_user"
            ),
            models.UniqueConstraint(
                fields=["user"], condition=Q(is_backup=True), name="one_backup_payment_method_per_user"
            ),
            models.CheckConstraint(
                condition=~(Q(is_default=True) & Q(is_backup=True)), name="payment_method_default_is_not_backup"
            ),
            models.CheckConstraint(
                condition=Q(removed_at__isnull=True) | (Q(is_default=False) & Q(is_backup=False)),
                name="removed_payment_method_has_no_role",
            ),
        ]

    def __str__(self):
        return self.summary

    @property
    def is_bank_account(self) -> bool:
        return self.kind in self.BANK_KINDS

    @property
    def short_summary(self) -> str:
        """What a payment made with it records: "Visa •••• 4242" or "Commerzbank •••• 3000"."""
        if self.is_bank_account:
            return bank_summary(self.bank_name, self.last4)
        return card_summary(self.brand, self.last4)

    @property
    def summary(self) -> str:
        if self.is_bank_account:
            return _("Bank account at %(bank)s ending %(last4)s") % {
                "bank": self.bank_name or _("your bank"), "last4": self.last4,
            }  # fmt: skip
        brand = card_brand_label(self.brand)
        if self.exp_month and self.exp_year:
            return _("%(brand)s ending %(last4)s, expires %(month)02d/%(year)d") % {
                "brand": brand, "last4": self.last4, "month": self.exp_month, "year": self.exp_year,
            }  # fmt: skip
        return _("%(brand)s ending %(last4)s") % {"brand": brand, "last4": self.last4}

    def is_expired(self, today) -> bool:
        if not (self.exp_month and self.exp_year):
            return False
        return (self.exp_year, self.exp_month) < (today.year, today.month)


class BankMandate(TransitionsMixin, models.Model):
    """A direct-debit mandate: the payer's signed permission for the biller to debit a bank account. The legal record
    is ours: the exact text shown (biller's name, creditor identifier, the payer's rights, the refund period), when
    it was accepted, from which IP address and browser. Real Stripe also gets the acceptance as `mandate_data` and
    answers with its Mandate (id, reference), kept here; localstripe has no mandates, so there the row is all there is.

    One-time mandates (`single_use`) belong to one payment from the pay screen; standing ones (`multi_use`) to a saved
    bank account (`payment_method`), for autopay. A revoked or inactive mandate debits nothing more: the services
    check `status` under the charge's locks before every debit."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Accepted, waiting for the bank")
        ACTIVE = "active", _("Active")
        INACTIVE = "inactive", _("Inactive (the bank refused it)")
        REVOKED = "revoked", _("Revoked")

    TRANSITIONS = {
        Status.PENDING: {Status.ACTIVE, Status.INACTIVE, Status.REVOKED},
        Status.ACTIVE: {Status.INACTIVE, Status.REVOKED},
        Status.INACTIVE: {Status.ACTIVE, Status.REVOKED},
        Status.REVOKED: set(),
    }
    # A debit may be started only under these.
    DEBITABLE_STATUSES = (Status.PENDING, Status.ACTIVE)

    class Usage(models.TextChoices):
        SINGLE_USE = "single_use", _("One payment")
        MULTI_USE = "multi_use", _("Standing (autopay)")

    biller = models.ForeignKey("billing.Biller", on_delete=models.PROTECT, related_name="mandates")
    account = models.ForeignKey(
        "billing.CustomerAccount", on_delete=models.PROTECT, related_name="mandates", verbose_name=_("account")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="mandates",
        verbose_name=_("login"),
    )  # fmt: skip
    payment_method = models.OneToOneField(
        PaymentMethod, on_delete=models.PROTECT, null=True, blank=True, related_name="mandate",
        verbose_name=_("saved bank account"),
    )  # fmt: skip
    scheme = models.CharField(_("scheme"), max_length=16, choices=PaymentMethod.Kind.choices)
    usage = models.CharField(_("usage"), max_length=16, choices=Usage.choices)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    # Ours, unique, on every debit notice; Stripe's own reference replaces it on notices once Stripe gives one.
    reference = models.CharField(_("mandate reference"), max_length=35, unique=True)
    gateway_mandate_id = models.CharField(_("gateway mandate id"), max_length=255, null=True, blank=True, unique=True)
    gateway_reference = models.CharField(_("gateway mandate reference"), max_length=100, blank=True)
    gateway_payment_method_id = models.CharField(_("gateway payment method id"), max_length=255)
    holder_name = models.CharField(_("account holder"), max_length=200)
    holder_email = models.EmailField(_("account holder's e-mail"))
    bank_name = models.CharField(_("bank"), max_length=100, blank=True)
    bank_country = models.CharField(_("bank country"), max_length=2, blank=True)
    last4 = models.CharField(_("IBAN ends"), max_length=4)
    creditor_name = models.CharField(_("creditor"), max_length=200)
    creditor_identifier = models.CharField(_("creditor identifier"), max_length=35)
    mandate_text = models.TextField(_("mandate text shown"))
    language = models.CharField(_("language shown"), max_length=8, blank=True)
    accepted_at = models.DateTimeField(_("accepted"))
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("browser (user agent)"), max_length=500, blank=True)
    status_changed_at = models.DateTimeField(_("status changed"), null=True, blank=True)
    # `created` of the newest mandate.updated applied: an older event arriving later never moves the status back.
    last_event_created = models.BigIntegerField(_("newest event applied (unix time)"), default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("bank mandate")
        verbose_name_plural = _("bank mandates")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(usage="single_use") | Q(payment_method__isnull=False), name="standing_mandate_has_method"
            ),
        ]

    def __str__(self):
        return f"{self.display_reference} ({self.get_status_display()})"

    @property
    def payer_email(self) -> str:
        """Where its notices go (notifications reads `payer_email` as it does on a payment): the account holder."""
        return self.holder_email

    @property
    def display_reference(self) -> str:
        return self.gateway_reference or self.reference

    @property
    def may_debit(self) -> bool:
        return self.status in self.DEBITABLE_STATUSES

    @property
    def summary(self) -> str:
        return bank_summary(self.bank_name, self.last4)
