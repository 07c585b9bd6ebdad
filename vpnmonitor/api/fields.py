"""Serializer fields that apply the GDPR masks (vpnmonitor.privacy) to API responses."""

from rest_framework import serializers

from vpnmonitor.privacy import mask_client, masker, should_mask


class MaskedIPField(serializers.CharField):
    """An IP address field that is masked in GDPR mode for callers without the permission."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        if value is None:
            return None
        value = super().to_representation(value)
        return masker(self.context.get("request"))(value)


class MaskedClientField(MaskedIPField):
    """A client as logged (IP address or host name), masked with mask_client() in GDPR mode."""

    def to_representation(self, value):
        if value is None:
            return None
        value = serializers.CharField.to_representation(self, value)
        return mask_client(value) if should_mask(self.context.get("request")) else value
