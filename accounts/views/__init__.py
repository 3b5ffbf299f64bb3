"""The signed-in payer's pages (accounts/urls.py routes to each module):

- portal.py: the dashboard, one account's bills and payments, its notice choices, a bill's page and PDF;
- payment_settings.py: saved cards, autopay and paperless (each change needs a recent sign-in);
- links.py: linking and unlinking accounts, the pages a guest payment's e-mailed links open, enrolment invitations.
"""
