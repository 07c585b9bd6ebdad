"""Admin of proxytraffic: the bucket rows, read-only."""

from django.contrib import admin

from proxytraffic.models import TrafficBucket
from vpnmonitor.privacy import MaskedAddressesAdminMixin


@admin.register(TrafficBucket)
class TrafficBucketAdmin(MaskedAddressesAdminMixin, admin.ModelAdmin):
    masked_addresses = ("ip_out", "ip_from")
    list_display = ["bucket", "user_id", "order_id", "domain", "error", "worker", "count", "bytes_sent",
                    "bytes_received", "error_count", "max_concurrency"]
    search_fields = ["=domain", "=worker"]
    ordering = ["-bucket"]
    # Millions of rows: no full COUNT(*) on every page.
    show_full_result_count = False
    readonly_fields = [field.name for field in TrafficBucket._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
