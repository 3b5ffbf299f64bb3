"""Billing's seam: the signals billing sends, so the code that reacts (autopay, guest enrolment, notices) is never
called by name from the money path. Billing imports neither `notifications` nor `accounts`; they listen here.

Every receiver is connected in an AppConfig.ready() (billing's own in BillingConfig, notices in
NotificationsConfig) with a `dispatch_uid`, so it is connected once. All kwargs are ids or rows billing already holds;
a receiver re-reads what it needs.

Two rules, by kind of signal:
- `bill_paid` is sent with `send` (not `send_robust`), synchronously, inside the caller's transaction and under its
  bill locks: a receiver's error rolls the payment back, exactly as a direct call would.
- The "after commit" signals (`payment_succeeded`, `payments_succeeded`, `bills_issued`, `refund_issued`,
  `dispute_recorded`) are sent from `transaction.on_commit(..., robust=True)` with `send_robust`: the money has
  moved; a receiver's error is logged and never reaches the payer, the webhook or the staff member. Receivers must be
  safe to call more than once.
"""

from django.dispatch import Signal

# Sent by billing.payments.allocations (payment_apply, allocations_reapply) after money was put on bills, under the
# bill locks, in the caller's transaction. kwargs: bills (the locked Bill rows the payment touched; a receiver picks
# those with balance_due <= 0). Receivers may write (under the same transaction) and may raise to roll it all back.
# Receiver: billing.autopay.receivers.autopay_stop_on_bill_paid (cancels the bills' waiting autopay charges).
bill_paid = Signal()

# Sent by billing.payments.core when a payment's success is recorded, after commit (once per recorded success: the
# webhook and the payer's return may both record it, so receivers must be idempotent). kwargs: payment_id, channel
# (the Payment.Channel it was made on; autopay's receipts are raised in batches by the notifications sweep).
# Receivers, in connection order: billing.enrolment.receivers (the guest's paperless/autopay ticks), then
# notifications.receivers (the receipt notice, raised once through Payment.receipt_sent_at).
payment_succeeded = Signal()

# Sent by billing.payments.transfers after commit for a batch of recorded successes (bank transfers: a statement
# chunk, or staff's one): once per batch, so its reactions cost a fixed number of queries per batch, not per payment.
# kwargs: payment_ids. Receivers, in connection order: billing.enrolment.receivers, then notifications.receivers
# (one receipt per payment, raised once through Payment.receipt_sent_at, the outbox rows of the batch in one insert).
payments_succeeded = Signal()

# Sent by billing.bills (bill_issue, the bill import) after commit, when bills became payable. kwargs: account_ids.
# Receiver: billing.payments.receivers.credit_apply_on_bills_issued (credit held on an account pays its new bills).
bills_issued = Signal()

# Sent by billing.payments.refunds when a refund's money was taken off the payment, after commit. kwargs: refund_id.
# Receiver: notifications.receivers (the refund_issued notice, once per refund and channel).
refund_issued = Signal()

# Sent by billing.payments.disputes when a dispute was recorded or changed, after commit. kwargs: dispute_id.
# Receiver: notifications.receivers (the staff e-mail to the biller's support address, or the site admins).
dispute_recorded = Signal()

# Sent by billing.autopay (planning, dunning) when a payer should hear about their autopay, inside the caller's
# transaction. kwargs: kind (a notice kind: "autopay_upcoming", "card_expiring", "payment_failed",
# "autopay_suspended"), account_id, bill_id (or None), payment_id (or None), once_per_bill (True: raise it only if
# no notice of this kind exists for the bill yet). A receiver enqueues the notice after commit (errors logged and
# swallowed: a notice never undoes a charge) and returns True when it will, False when once_per_bill found one.
# Receiver: notifications.receivers.
autopay_notice_wanted = Signal()

# The inverted hook: sent by notifications.render while it renders an outbox row, so autopay can add its facts
# without notifications importing autopay. kwargs: notification. Receivers return a dict merged into the template
# context (empty for kinds they do not know) and must not write.
# Receiver: billing.autopay.receivers.autopay_notice_context_give.
notice_context_wanted = Signal()

# Sent by billing.plans when a payer should hear about their payment plan, inside the caller's transaction. kwargs: kind
# ("plan_proposed": staff's proposal with its signed accept link; "plan_active"; "plan_broken"), plan_id. A receiver enqueues the notice after commit (errors logged and
# swallowed: a notice never undoes a plan change). Receiver: notifications.receivers.
plan_notice_wanted = Signal()
# Sent by billing.payments.mandates when a payer accepted a direct-debit mandate, after commit. kwargs: mandate_id.
# Receiver: notifications.receivers (the mandate confirmation e-mail with the mandate text, once per mandate).
mandate_accepted = Signal()

# Sent by billing.payments.core when a bank debit that was processing (and counted on the bills) failed: the bank
# returned it. Synchronously, inside the recording transaction, after the money came off the bills (like bill_paid:
# a receiver's error rolls it all back). kwargs: payment_id, code (the bank's failure code).
# Receivers: billing.autopay.receivers (dunning for an autopay debit), notifications.receivers (the payer is told,
# after commit).
bank_debit_returned = Signal()
