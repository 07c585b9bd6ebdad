"""Admin: subscriber prefixes (editable) and flow reports (read-only, cheap on a table of millions)."""

from django.contrib import admin

from flowreports import services
from flowreports.models import CollectorStatus, ExporterSampling, FlowReport, SubscriberPrefix
from vpnmonitor.admin import AuditedAdminMixin, LargeTableAdminMixin
from vpnmonitor.privacy import MaskedAddressesAdminMixin


@admin.register(SubscriberPrefix)
class SubscriberPrefixAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["cidr", "subscriber_id", "description"]
    search_fields = ["cidr", "subscriber_id", "description"]


@admin.register(ExporterSampling)
class ExporterSamplingAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Rates for exporters that sample but do not export their rate; running collectors read them every few
    seconds."""

    list_display = ["exporter", "observation_domain", "sampling_rate", "description"]
    search_fields = ["=exporter", "description"]


@admin.register(FlowReport)
class FlowReportAdmin(MaskedAddressesAdminMixin, LargeTableAdminMixin, admin.ModelAdmin):
    masked_addresses = ("source_ip", "destination_ip")
    list_display = [
        "start_time", "subscriber_id", "source_ip", "source_port", "destination_ip", "destination_port",
        "protocol", "packets", "bytes", "sampling_rate", "direction", "action", "exporter",
    ]
    list_filter = ["direction", "action"]
    # Exact matches only: they use the (subscriber_id, start_time) and address indexes.
    search_fields = ["=subscriber_id", "=source_ip", "=destination_ip"]
    list_per_page = 50

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in FlowReport._meta.fields]

    def has_add_permission(self, request):
        # Flows come from exporters and the ingest API, never from a form.
        return False

    def has_change_permission(self, request, obj=None):
        return False

    # Deletes go through the service, which keeps the rollups exact.
    def delete_model(self, request, obj):
        services.delete_flows(FlowReport.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        services.delete_flows(queryset)


@admin.register(CollectorStatus)
class CollectorStatusAdmin(admin.ModelAdmin):
    """Written by `collect_flows`; admins only look, or delete the row of a collector that was retired."""

    list_display = ["hostname", "listen", "pid", "started_at", "updated_at", "stopped_at", "packets_lost",
                    "flows_received", "flows_stored", "flows_dropped", "malformed_packets"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
