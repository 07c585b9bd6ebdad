"""GDPR masking: mask_ip() and the other masks, who sees addresses unmasked, and the admin mixin that applies
them when GDPR mode is on. The serializer fields that apply them in API responses are vpnmonitor.api.fields."""

import hashlib
import hmac
import ipaddress

from django.conf import settings

from vpnmonitor.models import PrivacySettings
from vpnmonitor.roles import UNMASKED_IP, has_capability


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


def is_masked_host(text):
    """Whether text is what mask_host() shows for a name (so a masked caller can ask for that client again)."""
    return len(text) == 21 and text.startswith("host-") and all(c in "0123456789abcdef" for c in text[5:])


def mask_client(value):
    """A client as logged (an IP address or a host name), masked: mask_ip() for addresses, mask_host() for names."""
    if not isinstance(value, str) or not value:
        return value
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return mask_host(value)
    return mask_ip(value)


def mask_endpoint(value, mask):
    """Mask the address of 'IP', 'IP:port' or '[IPv6]:port' and keep the port."""
    if not value:
        return value
    text = str(value)
    host, port = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return mask(text)
    masked = mask(host)
    if not port:
        return masked
    return f"[{masked}]:{port}" if ":" in masked else f"{masked}:{port}"


def mask_addresses_in(value):
    """value with every string that is an address, 'IP:port' or a network (CIDR) masked, in nested dicts and
    lists too; other text (names, paths) is left as it is. For free-form records such as audit details."""
    if isinstance(value, dict):
        return {key: mask_addresses_in(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_addresses_in(item) for item in value]
    if not isinstance(value, str) or not value:
        return value
    if "/" in value:
        try:
            network = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            return value
        return f"{mask_ip(str(network.network_address))}/{network.prefixlen}"
    return mask_endpoint(value, mask_ip)  # mask_ip leaves text that is no address as it is


def gdpr_mode():
    return PrivacySettings.current().gdpr_mode


def can_view_unmasked_ip(request):
    """Whether the caller of a request (Django's or DRF's) holds the unmasked-ip capability."""
    return has_capability(request, UNMASKED_IP)


def should_mask(request):
    """True when this request's responses must hide personal IP addresses (None: no caller, so masked in GDPR
    mode)."""
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


class MaskedAddressesAdminMixin:
    """Admin for records holding personal addresses: in GDPR mode, staff without the unmasked-ip permission see
    them masked in lists and detail pages, cannot search by them, and cannot edit or bulk-delete such records
    (their pages and confirmations would show the addresses, and a form would save the masked values back).

    masked_addresses names the fields holding an address, 'IP:port', '[IPv6]:port' or a client's host name
    (masked as mask_client() does: a keyed hash); masked_free_text the fields (text or JSON) that may hold
    addresses among other values, which mask_addresses_in() masks and leaves the rest of.
    """

    masked_addresses = ()
    masked_free_text = ()

    def _mask(self, name, value):
        if name in self.masked_addresses:
            return mask_endpoint(value, mask_client)
        return mask_addresses_in(value)

    def get_list_display(self, request):
        names = super().get_list_display(request)
        if not should_mask(request):
            return names
        masked = (*self.masked_addresses, *self.masked_free_text)
        return [self._masked_column(name) if name in masked else name for name in names]

    def _masked_column(self, name):
        def column(obj):
            return self._mask(name, getattr(obj, name))

        column.short_description = self.model._meta.get_field(name).verbose_name
        column.admin_order_field = name
        return column

    def get_search_fields(self, request):
        fields = super().get_search_fields(request)
        if not should_mask(request):
            return fields
        masked = (*self.masked_addresses, *self.masked_free_text)
        return [field for field in fields if field.lstrip("=^@") not in masked]

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None and should_mask(request):
            for name in (*self.masked_addresses, *self.masked_free_text):
                setattr(obj, name, self._mask(name, getattr(obj, name)))
            obj._addresses_masked = True
        return obj

    def has_change_permission(self, request, obj=None):
        if obj is not None and getattr(obj, "_addresses_masked", False):
            return False
        return super().has_change_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if should_mask(request):
            actions.pop("delete_selected", None)
        return actions
