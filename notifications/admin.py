"""Staff view of the outbox and of the notice settings.

Notifications and their delivery attempts are history: read-only for everyone, superusers included. Policies,
preferences and SMS opt-outs are editable (staff may record an opt-out a payer asked for on the phone).
"""

from django.contrib import admin

from .models import (
    AccountNoticeSettings,
    DeliveryAttempt,
    NoticePolicy,
    NoticePreference,
    Notification,
    SmsOptOut,
)


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class DeliveryAttemptInline(ReadOnlyMixin, admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    fields = ["number", "outcome", "provider_id", "error", "created_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(Notification)
class NotificationAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "dedupe_key", "kind", "channel", "status", "send_at", "attempts", "next_attempt_at", "sent_at", "provider_id",
        "recipient",
    ]  # fmt: skip
    list_filter = ["status", "channel", "kind", "biller", "send_at"]
    search_fields = [
        "dedupe_key", "provider_id", "recipient", "bill__number", "account__account_number", "account__holder_name",
    ]  # fmt: skip
    list_select_related = ["account"]
    date_hierarchy = "send_at"
    ordering = ["-send_at", "-pk"]
    readonly_fields = [f.name for f in Notification._meta.fields]
    inlines = [DeliveryAttemptInline]
    show_full_result_count = False  # the outbox gets big; counting it on every page is wasted work


@admin.register(NoticePolicy)
class NoticePolicyAdmin(admin.ModelAdmin):
    list_display = ["biller", "send_time", "quiet_hours_start", "quiet_hours_end", "catch_up_days"]


@admin.register(NoticePreference)
class NoticePreferenceAdmin(admin.ModelAdmin):
    list_display = ["account", "kind", "channel", "enabled", "updated_at"]
    list_filter = ["kind", "channel", "enabled"]
    search_fields = ["account__account_number", "account__holder_name"]
    raw_id_fields = ["account"]


@admin.register(AccountNoticeSettings)
class AccountNoticeSettingsAdmin(admin.ModelAdmin):
    list_display = ["account", "quiet_hours_start", "quiet_hours_end", "time_zone"]
    search_fields = ["account__account_number", "account__holder_name"]
    raw_id_fields = ["account"]


@admin.register(SmsOptOut)
class SmsOptOutAdmin(admin.ModelAdmin):
    list_display = ["phone", "source", "keyword", "created_at"]
    search_fields = ["phone"]
    list_filter = ["source"]
    readonly_fields = ["created_at"]

    def get_readonly_fields(self, request, obj=None):
        # An opt-out is a record of what a person said: it can be removed (they opted back in) but not rewritten.
        return ["phone", "source", "keyword", "created_at"] if obj else ["created_at"]
