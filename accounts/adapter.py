"""allauth's e-mails as the biller's: sent under the biller's name, greeting and signing off as the biller, and every
address in them on the site's public address (SITE_URL), never the host the request happened to come in on (the
embedded server's 127.0.0.1:8810, a proxy's inside name)."""

from types import SimpleNamespace
from urllib.parse import urlsplit

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings

from billing.bills.selectors import biller_for_site


def public_url(url: str) -> str:
    """`url` moved onto SITE_URL: the same path and query on the configured scheme and host."""
    parts = urlsplit(url)
    return settings.SITE_URL + parts.path + (f"?{parts.query}" if parts.query else "")


class AccountAdapter(DefaultAccountAdapter):
    def get_from_email(self) -> str:
        biller = biller_for_site()
        return biller.email_sender() if biller else super().get_from_email()

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        biller = biller_for_site()
        site = SimpleNamespace(name=biller.name if biller else "Billpay", domain=urlsplit(settings.SITE_URL).netloc)
        # allauth builds its links (activate_url, password_reset_url, signup_url) from the request's host.
        links = {
            key: public_url(value)
            for key, value in context.items()
            if isinstance(value, str) and value.startswith(("http://", "https://"))
        }
        super().send_mail(template_prefix, email, {**context, **links, "current_site": site, "biller": biller})
