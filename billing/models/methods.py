"""Saved payment methods: the gateway's customer for a portal login and the cards saved to it
(billing/methods/ holds their services)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

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
    """A card a payer saved to their login. Only the gateway's id and what we show (brand, last 4, expiry) are kept.

    One default per login (exactly one while any card is saved: the services keep that), at most one backup, which is
    what a failed charge on the default falls back to. Removed cards stay as history with `removed_at`."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payment_methods", verbose_name=_("user")
    )
    gateway_customer_id = models.CharField(_("gateway customer id"), max_length=255)
    gateway_payment_method_id = models.CharField(_("gateway payment method id"), max_length=255, unique=True)
    brand = models.CharField(_("brand"), max_length=32, blank=True)
    last4 = models.CharField(_("last 4 digits"), max_length=4, blank=True)
    exp_month = models.PositiveSmallIntegerField(_("expiry month"), null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(_("expiry year"), null=True, blank=True)
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
    def summary(self) -> str:
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
