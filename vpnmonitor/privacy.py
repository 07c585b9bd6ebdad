"""GDPR masking: mask_ip() and the serializer field that applies it when GDPR mode is on."""

import hashlib
import hmac
import ipaddress

from django.conf import settings
from rest_framework import serializers

from vpnmonitor.api.principals import can_view_unmasked_ip


def mask_ip(value):
    """IPv4 -> its /24 (host part zeroed), IPv6 -> its /48, v4-mapped IPv6 -> mapped /24.

    Anything that is not an IP address is returned unchanged.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return value
    if address.version == 4:
        return str(ipaddress.IPv4Address(int(address) & 0xFFFFFF00))
    mapped = address.ipv4_mapped
    if mapped is not None:
        return "::ffff:" + str(ipaddress.IPv4Address(int(mapped) & 0xFFFFFF00))
    return str(ipaddress.IPv6Address(int(address) >> 80 << 80))


def mask_host(name):
    """A client host name in GDPR mode: a stable keyed hash (HMAC-SHA256 with SECRET_KEY), never the name."""
    digest = hmac.new(settings.SECRET_KEY.encode(), name.lower().encode(), hashlib.sha256).hexdigest()
    return f"host-{digest[:16]}"


def mask_client(value):
    """A client as logged (an IP address or a host name), masked: mask_ip() for addresses, mask_host() for names."""
    if not isinstance(value, str) or not value:
        return value
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return mask_host(value)
    return mask_ip(value)


def gdpr_mode():
    from vpnmonitor.models import PrivacySettings

    return PrivacySettings.current().gdpr_mode


def should_mask(request):
    """True when this request's responses must hide personal IP addresses."""
    if request is None:
        return gdpr_mode()
    cached = getattr(request, "_vpnmonitor_mask", None)
    if cached is None:
        cached = gdpr_mode() and not can_view_unmasked_ip(request)
        try:
            request._vpnmonitor_mask = cached
        except AttributeError:
            pass
    return cached


def masker(request):
    """The function to pass IP addresses through for this request (mask_ip or identity)."""
    return mask_ip if should_mask(request) else _identity


def _identity(value):
    return value


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
