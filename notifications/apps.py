from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotificationsConfig(AppConfig):
    """Reminders and notices on several channels: the outbox, its planner and sweepers (docs/notifications.md)."""

    name = "notifications"
    verbose_name = _("Notifications")
