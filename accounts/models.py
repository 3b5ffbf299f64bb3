from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.utils.translation import gettext_lazy as _


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
        INVITATION = "invitation", _("Enrolment invitation")
        GUEST_RECEIPT = "guest_receipt", _("Receipt of a guest payment")

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
