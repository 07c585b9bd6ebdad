"""Flow report serializers: the spec's item shape for output, and the strict item shape for ingest."""

import datetime as dt

from rest_framework import serializers

from flowreports.models import SAMPLING_RATE_MAX, FlowReport
from vpnmonitor.api.fields import MaskedIPField
from vpnmonitor.api.parsers import StrictIntegerField

BIGINT_MAX = 2**63 - 1


class MillisecondDateTimeField(serializers.DateTimeField):
    """'2025-02-22T10:30:00.000Z': UTC with milliseconds, as the spec shows."""

    def to_representation(self, value):
        if value is None:
            return None
        value = value.astimezone(dt.UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class FlowReportSerializer(serializers.ModelSerializer):
    # Flow addresses are personal data: both are masked in GDPR mode for callers without the permission.
    source_ip = MaskedIPField()
    destination_ip = MaskedIPField()
    start_time = MillisecondDateTimeField()
    end_time = MillisecondDateTimeField()

    class Meta:
        model = FlowReport
        fields = [
            "id", "subscriber_id", "source_ip", "destination_ip", "source_port", "destination_port",
            "protocol", "packets", "bytes", "start_time", "end_time", "direction", "action", "sampling_rate",
        ]
        read_only_fields = fields


class FlowReportItemSerializer(serializers.Serializer):
    """One flow in POST /api/v1/flow-reports (the listing's item shape without id).

    subscriber_id and direction may be left out or empty: the server then attributes the
    flow from its subscriber prefixes and VPN addresses, as it does for collected flows.
    """

    subscriber_id = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    source_ip = serializers.IPAddressField()
    destination_ip = serializers.IPAddressField()
    source_port = StrictIntegerField(min_value=0, max_value=65535, required=False, allow_null=True, default=None)
    destination_port = StrictIntegerField(
        min_value=0, max_value=65535, required=False, allow_null=True, default=None
    )
    protocol = StrictIntegerField(min_value=0, max_value=255)
    packets = StrictIntegerField(min_value=0, max_value=BIGINT_MAX)
    bytes = StrictIntegerField(min_value=0, max_value=BIGINT_MAX)
    start_time = serializers.DateTimeField(
        default_timezone=dt.UTC, help_text="ISO 8601, e.g. 2025-02-22T10:30:00.000Z; times without offset are UTC."
    )
    end_time = serializers.DateTimeField(default_timezone=dt.UTC)
    direction = serializers.ChoiceField(choices=["uplink", "downlink", ""], required=False, default="")
    action = serializers.ChoiceField(choices=["allow", "drop"], required=False, default="allow")
    sampling_rate = StrictIntegerField(
        min_value=1, max_value=SAMPLING_RATE_MAX, required=False, default=1,
        help_text="1 in this many packets was sampled (1 = unsampled); packets and bytes are already scaled by it.",
    )

    def validate(self, attrs):
        if attrs["end_time"] < attrs["start_time"]:
            raise serializers.ValidationError({"end_time": "must not be before start_time."})
        return attrs


class RetentionSerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=36500)
