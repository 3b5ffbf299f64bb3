"""Bank transfers: the credit an account holds (and its append-only history), imported bank statements and their lines
(billing/payments/transfers.py and credit.py hold the money services; billing/banking/ the statement import)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from ..money import format_money
from ..storage import private_storage
from .base import TransitionsMixin, percent_done


class AccountCreditEntry(models.Model):
    """Append-only: one row per change to an account's held credit. `CustomerAccount.credit_balance` is the sum of
    its rows (received counts up, the others down). Every row names the transfer the money came from
    (`source_payment`), so a return of that transfer knows which credit, and which bills paid from it, to take back."""

    class Kind(models.TextChoices):
        RECEIVED = "received", _("Overpayment held as credit")
        APPLIED = "applied", _("Applied to a bill")
        REFUNDED = "refunded", _("Paid back by staff")
        RETURNED = "returned", _("Taken back by a bank return")

    account = models.ForeignKey(
        "billing.CustomerAccount", on_delete=models.PROTECT, related_name="credit_entries", verbose_name=_("account")
    )
    kind = models.CharField(_("what"), max_length=16, choices=Kind.choices)
    amount = models.BigIntegerField(_("amount"))
    currency = models.CharField(_("currency"), max_length=3)
    source_payment = models.ForeignKey(
        "billing.Payment", on_delete=models.PROTECT, related_name="credit_entries", verbose_name=_("from payment")
    )
    # applied: the account-credit payment that put it on bills; refunded/returned: the refund row.
    payment = models.ForeignKey(
        "billing.Payment", on_delete=models.PROTECT, null=True, blank=True, related_name="credit_spent",
        verbose_name=_("applied as payment"),
    )  # fmt: skip
    refund = models.ForeignKey(
        "billing.Refund", on_delete=models.PROTECT, null=True, blank=True, related_name="credit_entries"
    )
    message = models.CharField(_("details"), max_length=500, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("who"),
    )  # fmt: skip
    created_at = models.DateTimeField(_("when"), auto_now_add=True)

    class Meta:
        verbose_name = _("account credit entry")
        verbose_name_plural = _("account credit history")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_entry_amount_positive"),
            # One overpayment per transfer: recording a transfer twice can never double its credit.
            models.UniqueConstraint(
                fields=["source_payment"], condition=Q(kind="received"), name="credit_received_once_per_payment"
            ),
        ]

    @property
    def signed_amount(self) -> int:
        return self.amount if self.kind == self.Kind.RECEIVED else -self.amount

    def __str__(self):
        return f"{self.get_kind_display()} {format_money(self.signed_amount, self.currency)}"


class BankStatement(TransitionsMixin, models.Model):
    """One imported statement file and its report. Its lines are StatementLine rows (a line already brought in by an
    earlier, overlapping statement keeps pointing at that one and is counted here as already seen)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting")
        RUNNING = "running", _("Importing")
        SUCCEEDED = "succeeded", _("Imported")
        FAILED = "failed", _("Rejected")

    TRANSITIONS = {
        Status.PENDING: {Status.RUNNING, Status.FAILED},
        Status.RUNNING: {Status.SUCCEEDED, Status.FAILED},
        Status.SUCCEEDED: {Status.RUNNING},  # "match again": resumes lines left new by an interrupted run
        Status.FAILED: set(),
    }

    class Format(models.TextChoices):
        CAMT053 = "camt053", "ISO 20022 camt.053"
        MT940 = "mt940", "SWIFT MT940"
        BAI2 = "bai2", "BAI2"
        CSV = "csv", "CSV"

    biller = models.ForeignKey("billing.Biller", on_delete=models.PROTECT, related_name="bank_statements")
    filename = models.CharField(_("file name"), max_length=255)
    file = models.FileField(_("file"), upload_to="statements/", storage=private_storage, blank=True)
    sha256 = models.CharField(_("SHA-256 of the file"), max_length=64)
    format = models.CharField(_("format"), max_length=8, choices=Format.choices, blank=True)
    statement_id = models.CharField(_("statement id"), max_length=140, blank=True)
    bank_account = models.CharField(_("bank account"), max_length=64, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    total_lines = models.PositiveIntegerField(_("lines"), default=0)
    processed_lines = models.PositiveIntegerField(_("lines matched so far"), default=0)
    report = models.JSONField(_("report"), default=dict, blank=True)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("uploaded"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("bank statement")
        verbose_name_plural = _("bank statements")
        ordering = ["-created_at", "-pk"]
        permissions = [("import_statements", _("Can import bank statements and match their lines"))]

    def __str__(self):
        return f"{self.filename} ({self.get_status_display()})"

    @property
    def percent_done(self) -> int:
        finished = self.status in {self.Status.SUCCEEDED, self.Status.FAILED}
        return percent_done(processed=self.processed_lines, total=self.total_lines, finished=finished)


class StatementLine(TransitionsMixin, models.Model):
    """One booked entry of a statement, stored once per biller under its unique key (the bank's entry reference, or
    the statement id plus the entry's position), so a re-import or an overlapping statement adds nothing."""

    class Status(models.TextChoices):
        NEW = "new", _("Not matched yet")
        APPLIED = "applied", _("Applied")
        UNMATCHED = "unmatched", _("Waiting for staff")
        NOT_OURS = "not_ours", _("Not ours")
        IGNORED = "ignored", _("Ignored (debit)")
        RETURN = "return", _("Return: reversed a transfer")
        RETURNED = "returned", _("Returned by the bank")

    TRANSITIONS = {
        Status.NEW: {Status.APPLIED, Status.UNMATCHED, Status.IGNORED, Status.RETURN},
        Status.UNMATCHED: {Status.APPLIED, Status.NOT_OURS, Status.RETURNED},
        Status.APPLIED: {Status.RETURNED},
        Status.NOT_OURS: {Status.UNMATCHED},
        Status.IGNORED: set(),
        Status.RETURN: set(),
        Status.RETURNED: set(),
    }

    class Direction(models.TextChoices):
        CREDIT = "credit", _("Money in")
        DEBIT = "debit", _("Money out")

    class Outcome(models.TextChoices):
        EXACT = "exact", _("Paid what was owed")
        PARTIAL = "partial", _("Part of what was owed")
        OVER = "over", _("More than owed (credit held)")

    biller = models.ForeignKey("billing.Biller", on_delete=models.PROTECT, related_name="statement_lines")
    statement = models.ForeignKey(BankStatement, on_delete=models.PROTECT, related_name="lines")
    entry_key = models.CharField(_("entry key"), max_length=200)
    line_number = models.PositiveIntegerField(_("line in the file"))
    booking_date = models.DateField(_("booked"))
    direction = models.CharField(_("direction"), max_length=8, choices=Direction.choices)
    amount = models.BigIntegerField(_("amount"))
    currency = models.CharField(_("currency"), max_length=3)
    bank_transaction_id = models.CharField(_("bank's reference"), max_length=140, blank=True)
    end_to_end_id = models.CharField(_("end-to-end id"), max_length=140, blank=True)
    remittance = models.TextField(_("remittance information"), blank=True)
    counterparty_name = models.CharField(_("payer / payee"), max_length=200, blank=True)
    counterparty_account = models.CharField(_("their account"), max_length=64, blank=True)
    is_return = models.BooleanField(_("a return of a transfer"), default=False)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.NEW)
    outcome = models.CharField(_("outcome"), max_length=8, choices=Outcome.choices, blank=True)
    reference = models.CharField(_("reference found"), max_length=40, blank=True)
    account = models.ForeignKey(
        "billing.CustomerAccount", on_delete=models.PROTECT, null=True, blank=True, related_name="statement_lines"
    )
    payment = models.ForeignKey(
        "billing.Payment", on_delete=models.PROTECT, null=True, blank=True, related_name="statement_lines"
    )
    reverses = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="returns",
        verbose_name=_("returns the line"),
    )  # fmt: skip
    amount_applied = models.BigIntegerField(_("applied to bills"), default=0)
    amount_credited = models.BigIntegerField(_("held as credit"), default=0)
    note = models.CharField(_("why"), max_length=500, blank=True)
    # Who decided an unmatched line (assigned it to an account, or marked it not ours), and when.
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("decided by"),
    )  # fmt: skip
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("statement line")
        verbose_name_plural = _("statement lines")
        ordering = ["booking_date", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["biller", "entry_key"], name="statement_line_once_per_biller"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="statement_line_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount_applied__gte=0) & Q(amount_credited__gte=0), name="statement_line_split_nonnegative"
            ),
        ]
        indexes = [models.Index(fields=["statement", "status"]), models.Index(fields=["biller", "status"])]

    def __str__(self):
        return f"{self.booking_date} {format_money(self.amount, self.currency)} {self.counterparty_name}".strip()

    @property
    def amount_display(self) -> str:
        sign = "-" if self.direction == self.Direction.DEBIT else ""
        return sign + format_money(self.amount, self.currency)
