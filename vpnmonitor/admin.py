"""Admin for the shared settings: privacy, retention, API keys, the read-only audit log and ingestion health."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied

from vpnmonitor.models import ApiKey, AuditEvent, IngestionHealth, PrivacySettings, RetentionPolicy
from vpnmonitor.privacy import MaskedAddressesAdminMixin

admin.site.site_header = "vpnmonitor administration"
admin.site.site_title = "vpnmonitor"
admin.site.index_title = "Settings and data"


class ReadOnlyAdminMixin:
    """For records that are evidence (audit events, log entries): viewable, never edited in admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PrivacySettings)
class PrivacySettingsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "gdpr_mode", "updated_at"]

    def has_add_permission(self, request):
        return not PrivacySettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    list_display = ["dataset", "days", "description", "last_pruned_at", "last_pruned_rows"]
    list_editable = ["days"]
    readonly_fields = ["dataset", "last_pruned_at", "last_pruned_rows"]

    def has_add_permission(self, request):
        # Datasets are declared by the apps; admins only change how long each is kept.
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        from vpnmonitor.models import audit

        audit(request, "retention.update", obj.dataset, days=obj.days)


@admin.register(AuditEvent)
class AuditEventAdmin(MaskedAddressesAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    masked_addresses = ("client_address",)
    list_display = ["created_at", "user", "action", "target", "client_address"]
    list_filter = ["action"]
    search_fields = ["user", "action", "target"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "role", "tenant_user_id", "key_id", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["role"]
    readonly_fields = ["key_id", "created_at", "last_used_at"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        api_key, plaintext = ApiKey.issue(obj.name, obj.role, obj.tenant_user_id)
        obj.pk, obj.key_id, obj.key_hash = api_key.pk, api_key.key_id, api_key.key_hash
        obj._state.adding = False
        messages.warning(request, f"New API key for {obj.name} (shown once, copy it now): {plaintext}")

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        from django.utils import timezone

        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).")


@admin.register(IngestionHealth)
class IngestionHealthAdmin(admin.ModelAdmin):
    """One page (no table behind it): servers, log sources, flow collectors, ingest counters, Celery queue."""

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        from django.template.response import TemplateResponse

        from vpnmonitor import ingestion_health

        if not self.has_view_permission(request):
            raise PermissionDenied
        report = ingestion_health.ingestion_health()
        try:
            queues, queue_error = ingestion_health.celery_queue_lengths(), ""
        except Exception as exc:  # noqa: BLE001 - shown on the page instead of failing it
            queues, queue_error = {}, f"{type(exc).__name__}: {exc}"
        context = {
            **self.admin_site.each_context(request),
            "title": "Ingestion health",
            "opts": self.model._meta,
            "report": report,
            "summary": ingestion_health.health_details(report),
            "ingest_counts": ingestion_health.ingest_record_counts(),
            "queues": queues,
            "queue_error": queue_error,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/vpnmonitor/ingestion_health.html", context)
