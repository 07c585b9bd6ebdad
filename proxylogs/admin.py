"""Admin of proxylogs: log sources, the security profile, the shadow-IT and WAF catalogues, read-only entries."""

from django.contrib import admin

from proxylogs.models import LogImport, LogSource, ProxyLogEntry, SecurityProfile, ShadowItService, WafCategory
from vpnmonitor.admin import AuditedAdminMixin, LargeTableAdminMixin, ReadOnlyAdminMixin
from vpnmonitor.privacy import MaskedAddressesAdminMixin

# ---- Proxy access logs (Squid) ----


@admin.register(LogSource)
class LogSourceAdmin(AuditedAdminMixin, admin.ModelAdmin):
    audit_name = "logsource"
    list_display = ["name", "path", "format", "enabled", "last_import_at", "lines_imported", "lines_rejected",
                    "checkpoint_inode", "checkpoint_offset"]
    list_editable = ["enabled"]
    readonly_fields = ["checkpoint", "last_import_at", "lines_imported", "lines_rejected", "last_error"]


@admin.register(LogImport)
class LogImportAdmin(admin.ModelAdmin):
    list_display = ["started_at", "path", "format", "status", "lines_imported", "lines_rejected"]
    list_filter = ["status", "format"]
    readonly_fields = [field.name for field in LogImport._meta.fields]


@admin.register(ProxyLogEntry)
class ProxyLogEntryAdmin(MaskedAddressesAdminMixin, ReadOnlyAdminMixin, LargeTableAdminMixin, admin.ModelAdmin):
    masked_addresses = ("client_ip", "client_host")
    # Entries are evidence and feed the hourly rollup: clearing goes through the audited API.
    list_display = ["timestamp", "client_ip", "client_host", "method", "destination", "http_status", "result_code",
                    "bytes", "blocked", "waf_category"]
    list_filter = ["blocked", "method"]
    ordering = ["-timestamp", "-id"]


@admin.register(SecurityProfile)
class SecurityProfileAdmin(AuditedAdminMixin, admin.ModelAdmin):
    audit_name = "proxylogs.security_profile"
    list_display = ["__str__", "updated_at"]

    def has_add_permission(self, request):
        return not SecurityProfile.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ShadowItService)
class ShadowItServiceAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "category", "risk", "enabled"]
    list_editable = ["enabled"]
    list_filter = ["category", "risk", "enabled"]
    search_fields = ["name", "domains"]


@admin.register(WafCategory)
class WafCategoryAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "label", "enabled"]
    list_editable = ["enabled"]
