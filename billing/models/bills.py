"""Bills and who they are for: billers, customer accounts, bill imports, bills, their lines, and the append-only
billing history (billing/bills/ holds the services and the import)."""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import FileExtensionValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from ..money import format_money
from ..references import bank_reference, bank_reference_display
from ..storage import private_storage
from .base import TransitionsMixin, percent_done


LOGO_MAX_BYTES = 512 * 1024


def validate_logo_size(file) -> None:
    """A logo is embedded in every e-bill and PDF, so it must stay small."""
    if file.size > LOGO_MAX_BYTES:
        raise ValidationError(_("The logo must be at most 512 KB."))


def default_reminder_schedule() -> list[int]:
    return [-5, 0, 3, 10]  # days from the due date: five before, on the day, three and ten after


def default_retry_schedule() -> list[int]:
    return [1, 3, 5, 7]  # days after a failed autopay charge


def default_tip_presets() -> list[int]:
    return [15, 20, 25]  # percent; shown only when the biller turns tips on


class BankReferenceScheme(models.TextChoices):
    RF = "rf", _("ISO 11649 creditor reference (RF…)")
    NUMERIC = "numeric", _("Numbers with a Luhn check digit")


class Biller(models.Model):
    class PaperSize(models.TextChoices):
        A4 = "A4", "A4"
        LETTER = "letter", _("US Letter")

    class Calendar(models.TextChoices):
        GREGORIAN = "gregorian", _("Gregorian")
        SOLAR_HIJRI = "solar_hijri", _("Solar Hijri (Persian pages only)")

    class LookupFactor(models.TextChoices):
        POSTAL_CODE = "postal_code", _("Postal code of the service address")
        LAST_BILL_AMOUNT = "last_bill_amount", _("Amount of the last bill")

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), unique=True)
    # Branding
    brand_color = models.CharField(
        _("brand colour"),
        max_length=7,
        default="#0b5cab",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", _("Use a colour like #0b5cab."))],
    )
    tagline = models.CharField(_("tagline"), max_length=200, blank=True)
    remit_address = models.TextField(_("address for payments by mail"), blank=True)
    # Kept in private storage and embedded in the e-bill and its PDF as data, never served by URL. PNG or JPEG only
    # (no SVG, which can carry script); ImageField checks that Pillow can read it.
    logo = models.ImageField(
        _("logo"),
        upload_to="logos/",
        storage=private_storage,
        blank=True,
        validators=[FileExtensionValidator(["png", "jpg", "jpeg"]), validate_logo_size],
        help_text=_("PNG or JPEG, at most 512 KB. Shown at the top of every e-bill and PDF."),
    )
    paper_size = models.CharField(
        _("paper size"),
        max_length=8,
        choices=PaperSize.choices,
        default=PaperSize.LETTER,
        help_text=_("Used by every bill and receipt PDF."),
    )
    calendar = models.CharField(
        _("calendar for Persian pages"),
        max_length=16,
        choices=Calendar.choices,
        default=Calendar.GREGORIAN,
        help_text=_("Solar Hijri shows dates on Persian pages and PDFs in the Persian calendar with Persian digits."),
    )
    # Money and time
    currency = models.CharField(_("currency"), max_length=3, default="USD")
    time_zone = models.CharField(_("time zone"), max_length=64, default="UTC")
    # Support contact
    support_email = models.EmailField(_("support e-mail"), blank=True)
    support_phone = models.CharField(_("support phone"), max_length=40, blank=True)
    # Policies used by payments, reminders and retries (later issues read them)
    lookup_factor = models.CharField(
        _("second lookup factor"), max_length=32, choices=LookupFactor.choices, default=LookupFactor.POSTAL_CODE
    )
    minimum_payment = models.BigIntegerField(
        _("minimum online payment (minor units)"), default=100, validators=[MinValueValidator(1)]
    )
    maximum_payment = models.BigIntegerField(
        _("maximum online payment (minor units)"),
        null=True,
        blank=True,
        help_text=_("Leave empty for no limit beyond the balance due."),
    )
    convenience_fee_fixed = models.BigIntegerField(_("convenience fee, fixed (minor units)"), default=0)
    convenience_fee_basis_points = models.PositiveIntegerField(
        _("convenience fee, percent in basis points"), default=0, help_text=_("250 means 2.5%.")
    )
    tips_enabled = models.BooleanField(_("offer tip presets"), default=False)
    tip_presets = models.JSONField(_("tip presets (percent)"), default=default_tip_presets, blank=True)
    pay_link_valid_days = models.PositiveIntegerField(
        _("pay links stay valid this many days after the due date"), default=60
    )
    reminder_schedule = models.JSONField(
        _("reminder schedule (days from due date)"),
        default=default_reminder_schedule,
        blank=True,
        help_text=_("For example [-5, 0, 3, 10]: five days before, on the day, three and ten days after."),
    )
    retry_schedule = models.JSONField(
        _("failed-charge retry schedule (days after the failure)"), default=default_retry_schedule, blank=True
    )
    # Payment by bank transfer (docs/bank-transfers.md): where payers send it, and the reference they quote.
    bank_account_name = models.CharField(_("bank account holder"), max_length=140, blank=True)
    bank_name = models.CharField(_("bank name"), max_length=140, blank=True)
    bank_iban = models.CharField(_("IBAN"), max_length=34, blank=True)
    bank_account_number = models.CharField(
        _("bank account number"), max_length=34, blank=True, help_text=_("Where IBANs are not used.")
    )
    bank_routing_number = models.CharField(_("routing number / sort code"), max_length=20, blank=True)
    bank_bic = models.CharField(_("BIC (SWIFT code)"), max_length=11, blank=True)
    bank_reference_scheme = models.CharField(
        _("bank transfer reference"), max_length=8, choices=BankReferenceScheme.choices,
        default=BankReferenceScheme.RF,
    )  # fmt: skip
    bank_reference_prefix = models.CharField(
        _("reference prefix"), max_length=6, blank=True,
        validators=[RegexValidator(r"^[A-Za-z0-9]*$", _("Use letters and digits only."))],
        help_text=_("Put in front of every account's reference. Digits only for numeric references."),
    )  # fmt: skip
    # SEPA Direct Debit: the creditor identifier printed on every mandate (the biller's, from its bank), and how many
    # days before each autopay debit the payer is told its amount and date (the mandate text states it).
    sepa_creditor_identifier = models.CharField(
        _("SEPA creditor identifier"), max_length=35, blank=True,
        help_text=_("For example DE98ZZZ09999999999. Empty: payers cannot pay by bank debit."),
    )
    debit_notice_days = models.PositiveSmallIntegerField(
        _("days between a debit's pre-notification and the debit"), default=3, validators=[MinValueValidator(1)]
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("biller")
        verbose_name_plural = _("billers")
        # A view_ permission, so `setup_roles` gives it to clerks as well as billing admins.
        permissions = [("view_insight", _("Can view the insight page and its reports"))]
        constraints = [
            models.CheckConstraint(condition=Q(minimum_payment__gte=1), name="biller_minimum_payment_positive"),
            models.CheckConstraint(condition=Q(convenience_fee_fixed__gte=0), name="biller_fee_nonnegative"),
            models.CheckConstraint(
                condition=Q(maximum_payment__isnull=True) | Q(maximum_payment__gte=F("minimum_payment")),
                name="biller_maximum_at_least_minimum",
            ),
            models.CheckConstraint(
                condition=~Q(bank_reference_scheme="numeric") | Q(bank_reference_prefix__regex=r"^[0-9]*$"),
                name="biller_numeric_reference_prefix_digits",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def bank_transfer_offered(self) -> bool:
        return bool(self.bank_iban or self.bank_account_number)

    def email_sender(self) -> str:
        """The From of every e-mail sent for this biller: its name, on the site's sending address."""
        from email.utils import formataddr, parseaddr

        return formataddr((self.name, parseaddr(settings.DEFAULT_FROM_EMAIL)[1]))


class ImportBatch(TransitionsMixin, models.Model):
    """One uploaded bill file and its progress. The rows it created point back to it."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        RUNNING = "running", _("Importing")
        SUCCEEDED = "succeeded", _("Imported")
        FAILED = "failed", _("Rejected")

    TRANSITIONS = {
        Status.PENDING: {Status.RUNNING},
        Status.RUNNING: {Status.SUCCEEDED, Status.FAILED},
        Status.SUCCEEDED: set(),
        Status.FAILED: set(),
    }

    biller = models.ForeignKey(Biller, on_delete=models.PROTECT, related_name="import_batches")
    filename = models.CharField(_("file name"), max_length=255)
    file = models.FileField(_("file"), upload_to="imports/", storage=private_storage, blank=True)
    sha256 = models.CharField(_("SHA-256 of the file"), max_length=64)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    total_rows = models.PositiveIntegerField(_("rows"), default=0)
    processed_rows = models.PositiveIntegerField(_("rows checked"), default=0)
    accounts_created = models.PositiveIntegerField(_("accounts created"), default=0)
    bills_created = models.PositiveIntegerField(_("bills created"), default=0)
    bills_skipped = models.PositiveIntegerField(_("bills already imported"), default=0)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("uploaded"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("bill import")
        verbose_name_plural = _("bill imports")
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.filename} ({self.get_status_display()})"

    @property
    def percent_done(self) -> int:
        finished = self.status in {self.Status.SUCCEEDED, self.Status.FAILED}
        return percent_done(processed=self.processed_rows, total=self.total_rows, finished=finished)


class CustomerAccount(models.Model):
    """The biller's customer: one service account, which may be linked to several portal logins."""

    biller = models.ForeignKey(Biller, on_delete=models.PROTECT, related_name="accounts")
    account_number = models.CharField(_("account number"), max_length=40)
    holder_name = models.CharField(_("account holder"), max_length=200)
    address_line1 = models.CharField(_("service address"), max_length=200, blank=True)
    address_line2 = models.CharField(_("address line 2"), max_length=200, blank=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    region = models.CharField(_("region"), max_length=100, blank=True)
    postal_code = models.CharField(_("postal code"), max_length=20)
    country = models.CharField(_("country"), max_length=2, default="US")
    email = models.EmailField(_("contact e-mail"), blank=True)
    phone = models.CharField(_("contact phone"), max_length=32, blank=True)
    # Communication preferences; per-notice channel choices arrive with the reminders issue.
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES, default="en")
    email_notices = models.BooleanField(_("notices by e-mail"), default=True)
    sms_notices = models.BooleanField(_("notices by text message"), default=False)
    import_batch = models.ForeignKey(
        ImportBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="accounts"
    )
    # Money received beyond what the bills owed (an overpaid bank transfer), held for the next bill or a refund. Kept
    # equal to the sum of the account's AccountCreditEntry rows (the history), and changed only with them, under the
    # account's row lock, by billing/payments/credit.py.
    credit_balance = models.BigIntegerField(_("credit held"), default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("customer account")
        verbose_name_plural = _("customer accounts")
        ordering = ["account_number"]
        constraints = [
            models.UniqueConstraint(fields=["biller", "account_number"], name="account_number_unique_per_biller"),
            models.CheckConstraint(condition=Q(credit_balance__gte=0), name="account_credit_nonnegative"),
        ]

    def __str__(self):
        return f"{self.account_number} · {self.holder_name}"

    @property
    def postal_code_normalized(self) -> str:
        return normalize_postal_code(self.postal_code)

    @property
    def bank_reference(self) -> str:
        """What the payer quotes on a bank transfer (compact; `bank_reference_display` groups it for print)."""
        biller = self.biller
        return bank_reference(account_id=self.pk, scheme=biller.bank_reference_scheme, prefix=biller.bank_reference_prefix)

    @property
    def bank_reference_display(self) -> str:
        return bank_reference_display(self.bank_reference)


def normalize_postal_code(value: str) -> str:
    return "".join(ch for ch in (value or "").upper() if ch.isalnum())


class Bill(TransitionsMixin, models.Model):
    """A bill (invoice) sent to a customer account. "Bill" is the word used everywhere in this project."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        OPEN = "open", _("Open")
        PAID = "paid", _("Paid")
        VOID = "void", _("Void")
        UNCOLLECTIBLE = "uncollectible", _("Uncollectible")

    # The one place that says which status changes are allowed. A refund or reversed payment reopens a paid bill.
    TRANSITIONS = {
        Status.DRAFT: {Status.OPEN, Status.VOID},
        Status.OPEN: {Status.PAID, Status.VOID, Status.UNCOLLECTIBLE},
        Status.PAID: {Status.OPEN},
        Status.UNCOLLECTIBLE: {Status.OPEN, Status.PAID},
        Status.VOID: set(),
    }
    PAYABLE_STATUSES = (Status.OPEN, Status.UNCOLLECTIBLE)

    biller = models.ForeignKey(Biller, on_delete=models.PROTECT, related_name="bills")
    account = models.ForeignKey(CustomerAccount, on_delete=models.PROTECT, related_name="bills")
    number = models.CharField(_("bill number"), max_length=40)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.DRAFT)
    period_start = models.DateField(_("period start"))
    period_end = models.DateField(_("period end"))
    issue_date = models.DateField(_("issue date"), null=True, blank=True)
    due_date = models.DateField(_("due date"))
    currency = models.CharField(_("currency"), max_length=3)
    subtotal = models.BigIntegerField(_("subtotal"), default=0)
    tax = models.BigIntegerField(_("tax"), default=0)
    total = models.BigIntegerField(_("total"), default=0)
    amount_paid = models.BigIntegerField(_("amount paid"), default=0)
    import_batch = models.ForeignKey(
        ImportBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="bills"
    )
    # The stored PDF, and a fingerprint of what it was rendered from; a different fingerprint means re-render.
    pdf = models.FileField(_("PDF"), upload_to="bills/", storage=private_storage, blank=True, editable=False)
    pdf_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("bill")
        verbose_name_plural = _("bills")
        ordering = ["-due_date", "-pk"]
        permissions = [
            ("issue_bill", _("Can issue a bill")),
            ("void_bill", _("Can void a bill or write it off")),
            ("import_bills", _("Can import bills from a file")),
        ]
        constraints = [
            models.UniqueConstraint(fields=["biller", "number"], name="bill_number_unique_per_biller"),
            models.CheckConstraint(condition=Q(subtotal__gte=0), name="bill_subtotal_nonnegative"),
            models.CheckConstraint(condition=Q(tax__gte=0), name="bill_tax_nonnegative"),
            models.CheckConstraint(condition=Q(total=F("subtotal") + F("tax")), name="bill_total_is_subtotal_plus_tax"),
            models.CheckConstraint(condition=Q(amount_paid__gte=0), name="bill_amount_paid_nonnegative"),
            models.CheckConstraint(condition=Q(amount_paid__lte=F("total")), name="bill_never_overpaid"),
            models.CheckConstraint(condition=Q(period_end__gte=F("period_start")), name="bill_period_ordered"),
        ]
        indexes = [
            models.Index(fields=["account", "status", "due_date"]),
            # The insight page: bills issued in a period, and what is still owed by due date (billing/insight/).
            models.Index(fields=["biller", "issue_date"], name="bill_biller_issued"),
            models.Index(fields=["biller", "status", "due_date"], name="bill_biller_status_due"),
            # An account's newest bills (the dashboard's three) read from the index, not from its whole history.
            models.Index(fields=["account", "-due_date", "-id"], name="bill_account_newest"),
            # An account's open bills (PAYABLE_STATUSES), oldest due first, with every column the pay screen and the
            # dashboard's balances read: they are answered from the index alone (once vacuumed), not from the bills'
            # rows, and the pay screen's oldest ten are its first ten entries however many bills are open. A
            # statement can use it only when the statuses are in its text (`status__in_constants`,
            # billing/lookups.py) or its parameters are (Django's default client-side binding);
            # tests/billing/test_lookups.py checks this list against PAYABLE_STATUSES.
            models.Index(
                fields=["account", "due_date", "id", "total", "amount_paid", "number", "status", "currency"],
                condition=Q(status__in=["open", "uncollectible"]), name="bill_account_open",
            ),  # fmt: skip
        ]

    def __str__(self):
        return self.number

    @property
    def balance_due(self) -> int:
        if self.status in (self.Status.VOID, self.Status.DRAFT):
            return 0
        return self.total - self.amount_paid

    def money(self, minor: int) -> str:
        return format_money(minor, self.currency)

    def is_overdue(self, today) -> bool:
        return self.status in self.PAYABLE_STATUSES and self.due_date < today

    def pay_link_expires_on(self):
        return self.due_date + timedelta(days=self.biller.pay_link_valid_days)


class BillLine(models.Model):
    bill = models.ForeignKey(Bill, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField(_("position"), default=0)
    description = models.CharField(_("description"), max_length=200)
    quantity = models.DecimalField(_("quantity"), max_digits=14, decimal_places=3, default=1)
    unit_amount = models.BigIntegerField(_("unit price"), default=0)
    amount = models.BigIntegerField(_("amount"))
    tax_amount = models.BigIntegerField(_("tax"), default=0)
    # A metered line (water, power) says its unit; its quantity is the usage for the period. Meter readings are
    # optional and only shown.
    usage_unit = models.CharField(_("usage unit"), max_length=16, blank=True)
    meter_start = models.DecimalField(_("meter reading, start"), max_digits=14, decimal_places=3, null=True, blank=True)
    meter_end = models.DecimalField(_("meter reading, end"), max_digits=14, decimal_places=3, null=True, blank=True)

    class Meta:
        verbose_name = _("bill line")
        verbose_name_plural = _("bill lines")
        ordering = ["bill", "position", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="bill_line_amount_nonnegative"),
            models.CheckConstraint(condition=Q(tax_amount__gte=0), name="bill_line_tax_nonnegative"),
            models.CheckConstraint(condition=Q(unit_amount__gte=0), name="bill_line_unit_nonnegative"),
            models.CheckConstraint(
                condition=Q(meter_start__isnull=True) | Q(meter_end__isnull=True) | Q(meter_end__gte=F("meter_start")),
                name="bill_line_meter_readings_ordered",
            ),
        ]

    def __str__(self):
        return self.description


class BillingEvent(models.Model):
    """Append-only history of every status change and money action: who, when, what."""

    class Kind(models.TextChoices):
        BILL_CREATED = "bill_created", _("Bill created")
        BILL_STATUS = "bill_status", _("Bill status changed")
        PAYMENT_RECORDED = "payment_recorded", _("Payment recorded")
        PAYMENT_STATUS = "payment_status", _("Payment status changed")
        PAYMENT_APPLIED = "payment_applied", _("Payment applied to bill")
        REFUND = "refund", _("Refund")
        REFUND_STATUS = "refund_status", _("Refund status changed")
        DISPUTE = "dispute", _("Dispute")
        MANDATE = "mandate", _("Direct debit mandate")
        PDF_RENDERED = "pdf_rendered", _("PDF rendered")
        IMPORTED = "imported", _("Imported")
        CREDIT = "credit", _("Account credit")
        STATEMENT_LINE = "statement_line", _("Bank statement line")

    kind = models.CharField(_("what"), max_length=32, choices=Kind.choices)
    bill = models.ForeignKey(Bill, on_delete=models.CASCADE, null=True, blank=True, related_name="events")
    payment = models.ForeignKey(
        "billing.Payment", on_delete=models.CASCADE, null=True, blank=True, related_name="events"
    )
    account = models.ForeignKey(
        CustomerAccount, on_delete=models.CASCADE, null=True, blank=True, related_name="events"
    )
    # A bank statement line's status moves (matched, queued, decided by staff): its history, like a bill's.
    statement_line = models.ForeignKey(
        "billing.StatementLine", on_delete=models.CASCADE, null=True, blank=True, related_name="events",
        verbose_name=_("statement line"),
    )  # fmt: skip
    from_status = models.CharField(_("from"), max_length=16, blank=True)
    to_status = models.CharField(_("to"), max_length=16, blank=True)
    amount = models.BigIntegerField(_("amount"), null=True, blank=True)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    message = models.CharField(_("details"), max_length=500, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("who"),
    )
    created_at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("billing event")
        verbose_name_plural = _("billing history")
        ordering = ["-created_at", "-pk"]

    def __str__(self):
        return f"{self.get_kind_display()} {self.from_status}→{self.to_status}".strip()
