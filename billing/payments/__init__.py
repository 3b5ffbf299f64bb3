"""Payments: the gateway interface and its Stripe module, the payment core (attempts, recording a gateway result,
applying money to bills), online payments, refunds, the janitor, offline payments, disputes, receipts, the guest
lookup and the webhook endpoint. Import from the modules, e.g. `billing.payments.online`."""
