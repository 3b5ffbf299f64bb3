from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotificationsConfig(AppConfig):
    """Reminders and notices on several channels. Its models and tasks arrive with the reminders issue."""

    name = "notifications"
    verbose_name = _("Notifications")
