"""Admin for OpenVPN servers, clients, sessions, certificates and user profiles."""

from django import forms
from django.contrib import admin, messages

from monitoring import services
from monitoring.models import Certificate, UserProfile, VpnClient, VpnServer, VpnSession
from vpnmonitor.admin import AuditedAdminMixin
from vpnmonitor.privacy import MaskedAddressesAdminMixin


class VpnServerForm(forms.ModelForm):
    """The management password is write-only: the page never holds it, and an empty field keeps it."""

    management_password = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current one.",
    )
    clear_management_password = forms.BooleanField(required=False, label="Remove the management password")

    class Meta:
        model = VpnServer
        fields = ["name", "enabled", "region", "network_name", "time_zone", "management_address", "management_socket",
                  "management_password", "status_file", "pki_dir", "log_file"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["management_password"] = ""

    def clean_management_password(self):
        return self.cleaned_data["management_password"] or self.instance.management_password

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_management_password"):
            cleaned["management_password"] = ""
            self.instance.management_password = ""
        return cleaned


@admin.register(VpnServer)
class VpnServerAdmin(AuditedAdminMixin, admin.ModelAdmin):
    audit_name = "vpnserver"
    secret_fields = ("management_password", "clear_management_password")
    form = VpnServerForm
    list_display = ["name", "source_description", "enabled", "polling_ok", "last_polled_at", "last_success_at",
                    "last_error"]
    list_filter = ["enabled"]
    readonly_fields = ["last_polled_at", "last_success_at", "last_error", "last_status_time", "created_at"]
    fieldsets = [
        (None, {"fields": ["name", "enabled", "region", "network_name", "time_zone"]}),
        ("Source (one of)", {"fields": ["management_address", "management_socket", "management_password",
                                        "clear_management_password", "status_file"]}),
        ("Files", {"fields": ["pki_dir", "log_file"]}),
        ("Health", {"fields": ["last_polled_at", "last_success_at", "last_error", "last_status_time",
                               "created_at"]}),
    ]

    @admin.display(boolean=True, description="last poll ok")
    def polling_ok(self, server):
        return None if server.last_polled_at is None else not server.last_error

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if obj.pki_dir and (not change or "pki_dir" in form.changed_data):
            found = services.scan_new_pki_dir(obj)
            self.message_user(request, f"{found} certificate(s) found in {obj.pki_dir}.",
                              messages.SUCCESS if found else messages.WARNING)


@admin.register(VpnClient)
class VpnClientAdmin(MaskedAddressesAdminMixin, admin.ModelAdmin):
    masked_addresses = ("real_address", "virtual_address", "virtual_ipv6")
    list_display = ["common_name", "server", "status", "connections", "virtual_address", "recv_rate_bps",
                    "sent_rate_bps", "total_bytes_received", "total_bytes_sent", "last_seen"]
    list_filter = ["status", "server"]
    search_fields = ["common_name", "virtual_address", "real_address"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False


@admin.register(VpnSession)
class VpnSessionAdmin(MaskedAddressesAdminMixin, admin.ModelAdmin):
    masked_addresses = ("real_address", "real_ip", "virtual_address", "virtual_ipv6")
    list_display = ["common_name", "server", "status", "started_at", "ended_at", "real_ip", "virtual_address",
                    "bytes_received", "bytes_sent", "disconnect_reason"]
    list_filter = ["status", "server"]
    search_fields = ["common_name", "real_ip", "virtual_address"]
    date_hierarchy = "started_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False


@admin.register(Certificate)
class CertificateAdmin(admin.ModelAdmin):
    list_display = ["file", "common_name", "server", "not_after", "revoked"]
    list_filter = ["revoked", "server"]
    search_fields = ["file", "common_name", "serial"]


@admin.register(UserProfile)
class UserProfileAdmin(admin.ModelAdmin):
    list_display = ["common_name", "user_name", "email", "user_group"]
    search_fields = ["common_name", "user_name", "email"]
