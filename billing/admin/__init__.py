"""The staff side of Billpay: Django admin for billers, accounts, bills, payments and their history.

The admin parses input and calls one service per action; it never changes a status or an amount itself. History models
(attempts, refunds, events) are read-only here for everyone, superusers included. One module per area; importing them
here registers their ModelAdmins.
"""

from . import autopay, banking, billers, bills, customers, enrolment, imports, methods, payments, plans  # noqa: F401
