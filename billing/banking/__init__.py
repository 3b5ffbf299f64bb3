"""Bank statements: reading camt.053, MT940, BAI2 and CSV files, matching their lines to accounts by the transfer
reference, the unmatched queue. The money moves only through the payment core (billing/payments/transfers.py)."""
