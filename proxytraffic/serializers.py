"""Proxy traffic: the response shapes (numbers as strings, as the spec documents) and the request body as
OpenAPI shows it, derived from the one ingest schema (schema.WireRecord)."""

import msgspec
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from proxytraffic import schema
from vpnmonitor.timeseries import format_timestamp


def serializer_of(struct, name, item_names=None):
    """A DRF serializer with the fields, bounds, defaults and descriptions of a msgspec struct, for the OpenAPI
    schema only (item_names: the names of the structs it holds lists of). The checks themselves are the
    struct's (schema.check_batch), without a DRF field per value, so that a batch of 10,000 is checked in a
    fraction of a second."""
    fields = {}
    for field in msgspec.inspect.type_info(struct).fields:
        info, options = field.type, {}
        if isinstance(info, msgspec.inspect.Metadata):
            info, options["help_text"] = info.type, (info.extra_json_schema or {}).get("description")
        if not field.required:
            options.update(required=False, default=field.default)
        if isinstance(info, msgspec.inspect.ListType):
            item = serializer_of(info.item_type.cls, item_names[info.item_type.cls])
            fields[field.name] = item(many=True, max_length=info.max_length, **options)
        elif isinstance(info, msgspec.inspect.IntType):
            fields[field.name] = serializers.IntegerField(min_value=info.ge, max_value=info.le, **options)
        else:
            fields[field.name] = serializers.CharField(max_length=info.max_length, allow_blank=not field.required,
                                                       trim_whitespace=False, **options)
    return type(f"{name}Serializer", (serializers.Serializer,), {**fields, "__doc__": struct.__doc__})


IngestSerializer = serializer_of(schema.IngestBody, "Ingest", {schema.WireRecord: "TrafficRecord"})


@extend_schema_field({"type": "string", "example": "2026-03-15 10:15:00", "description": "UTC"})
class TimestampField(serializers.Field):
    """A datetime as "YYYY-MM-DD HH:MM:SS" (UTC)."""

    def to_representation(self, value):
        return format_timestamp(value)


class NumberString(serializers.CharField):
    """An integer the spec sends as a JSON string ("1542")."""

    def to_representation(self, value):
        return str(int(value or 0))


class TrafficPointSerializer(serializers.Serializer):
    bucket = TimestampField(source="slot")
    total_bytes_sent = NumberString()
    total_bytes_received = NumberString()
    bytes_total = NumberString()
    total_count = NumberString()


class RequestsPointSerializer(serializers.Serializer):
    bucket = TimestampField(source="slot")
    total_count = NumberString()
    total_errors = NumberString()


class ConcurrencyPointSerializer(serializers.Serializer):
    bucket = TimestampField(source="slot")
    max_concurrency = NumberString()
    total_count = NumberString()


class DomainSerializer(serializers.Serializer):
    domain = serializers.CharField()
    total_count = NumberString()
    bytes_total = NumberString()
    total_bytes_sent = NumberString()
    total_bytes_received = NumberString()
    total_errors = NumberString()


class ErrorTypeSerializer(serializers.Serializer):
    error = serializers.CharField()
    total_errors = NumberString()
    first_seen = TimestampField()
    last_seen = TimestampField()
    sample_domains = serializers.ListField(child=serializers.CharField(), help_text="Up to 3, most errors first")


class WebsiteSerializer(serializers.Serializer):
    domain = serializers.CharField()
    total_count = NumberString()
    bytes_total = NumberString()
    first_visit = TimestampField()
    last_visit = TimestampField()


class AnalyticsErrorSerializer(serializers.Serializer):
    message = serializers.CharField()
    path = serializers.CharField()
    timestamp = serializers.CharField()
