"""Admin for the shared settings (privacy, retention, API keys, users, groups, OAuth2 applications; every change
audited), the read-only audit log and ingestion health."""

import datetime
from collections.abc import Iterable

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.functional import cached_property
from django_celery_beat.admin import CrontabScheduleAdmin, IntervalScheduleAdmin, PeriodicTaskAdmin
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from oauth2_provider.admin import ApplicationAdmin
from oauth2_provider.models import get_application_model

from vpnmonitor import ingestion_health
from vpnmonitor.api.principals import request_actor
from vpnmonitor.models import ApiKey, AuditEvent, IngestionHealth, PrivacySettings, RetentionPolicy, audit
from vpnmonitor.privacy import MaskedAddressesAdminMixin

admin.site.site_header = "vpnmonitor administration"
admin.site.site_title = "vpnmonitor"
admin.site.index_title = "Settings and data"


class LargeTablePaginator(Paginator):
    """For tables of millions of rows: a page never waits for COUNT(*) of all of them. A filtered list counts at
    most CAP rows (admin then pages through the first CAP); the unfiltered list is counted in full only when its
    QuerySet says that is cheap (unfiltered_count_is_cheap, e.g. a sum over an hourly rollup)."""

    CAP = 10_000

    @cached_property
    def count(self):
        queryset = self.object_list
        if not queryset.query.where and getattr(queryset, "unfiltered_count_is_cheap", False):
            return queryset.count()
        return queryset.order_by().values("pk")[: self.CAP].count()


class LargeTableAdminMixin:
    """The list of a table of millions of rows: LargeTablePaginator, and no full count beside a filtered one."""

    paginator = LargeTablePaginator
    show_full_result_count = False


class ReadOnlyAdminMixin:
    """For records that are evidence (audit events, log entries): viewable, never edited in admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _plain(value):
    """A form value as JSON for the audit log: objects by name, lists sorted, times as ISO 8601."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime.date | datetime.time | datetime.timedelta):
        return str(value)
    if isinstance(value, Iterable) and not isinstance(value, bytes | dict):
        return sorted(str(item) for item in value)
    return str(value)


class AuditedAdminMixin:
    """Every add, change and delete of a setting through admin writes an AuditEvent: who, what, and each
    changed field before → after. Fields named in secret_fields are recorded as changed, never their values."""

    audit_name = None  # action prefix; the model's name by default
    secret_fields = ()

    def _audit_prefix(self):
        return self.audit_name or self.model._meta.model_name

    def audit_changes(self, form, change):
        changes = {}
        for name in form.changed_data:
            if name in self.secret_fields:
                changes[name] = {"changed": True}
            elif change:
                changes[name] = {"before": _plain(form.initial.get(name)), "after": _plain(form.cleaned_data.get(name))}
            else:
                changes[name] = {"after": _plain(form.cleaned_data.get(name))}
        return changes

    def save_related(self, request, form, formsets, change):
        # After the many-to-many fields are saved, so the row describes the finished change.
        super().save_related(request, form, formsets, change)
        audit(request_actor(request), f"{self._audit_prefix()}.{'update' if change else 'create'}", form.instance,
              changes=self.audit_changes(form, change))

    def delete_model(self, request, obj):
        audit(request_actor(request), f"{self._audit_prefix()}.delete", obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            audit(request_actor(request), f"{self._audit_prefix()}.delete", obj)
        super().delete_queryset(request, queryset)


@admin.register(PrivacySettings)
class PrivacySettingsAdmin(AuditedAdminMixin, admin.ModelAdmin):
    audit_name = "privacy"
    list_display = ["__str__", "gdpr_mode", "updated_at"]

    def has_add_permission(self, request):
        return not PrivacySettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(AuditedAdminMixin, admin.ModelAdmin):
    audit_name = "retention"
    list_display = ["dataset", "days", "description", "last_pruned_at", "last_pruned_rows"]
    list_editable = ["days"]
    readonly_fields = ["dataset", "last_pruned_at", "last_pruned_rows"]

    def has_add_permission(self, request):
        # Datasets are declared by the apps; admins only change how long each is kept.
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(MaskedAddressesAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    masked_addresses = ("client_address",)
    masked_free_text = ("target", "details")
    list_display = ["created_at", "user", "action", "target", "client_address"]
    list_filter = ["action"]
    search_fields = ["user", "action", "target"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdminMixin, admin.ModelAdmin):
    audit_name = "apikey"
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
        active = list(queryset.filter(revoked_at__isnull=True))
        count = queryset.filter(pk__in=[key.pk for key in active]).update(revoked_at=timezone.now())
        for key in active:
            audit(request_actor(request), "apikey.revoke", key,
                  changes={"revoked_at": {"before": None, "after": "revoked"}})
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


# Users, groups, OAuth2 applications and the beat schedule: their own packages' admin, every change audited.
for _model in (User, Group, get_application_model(), PeriodicTask, IntervalSchedule, CrontabSchedule):
    admin.site.unregister(_model)


@admin.register(User)
class AuditedUserAdmin(AuditedAdminMixin, UserAdmin):
    audit_name = "user"
    secret_fields = ("password", "password1", "password2")

    def user_change_password(self, request, id, form_url=""):
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            audit(request_actor(request), "user.password_change", self.get_object(request, id))
        return response


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdminMixin, GroupAdmin):
    audit_name = "group"


@admin.register(get_application_model())
class AuditedApplicationAdmin(AuditedAdminMixin, ApplicationAdmin):
    audit_name = "oauth_application"
    secret_fields = ("client_secret",)
    view_on_site = False  # its "site" page belongs to the application-management views, which are not served


@admin.register(PeriodicTask)
class AuditedPeriodicTaskAdmin(AuditedAdminMixin, PeriodicTaskAdmin):
    audit_name = "periodic_task"

    def _audit_enabled(self, request, queryset, change):
        """Run change (a bulk update of enabled) and audit each task's before → after."""
        before = dict(queryset.values_list("pk", "enabled"))
        change(queryset)
        after = dict(PeriodicTask.objects.filter(pk__in=before).values_list("pk", "enabled"))
        for task in PeriodicTask.objects.filter(pk__in=before):
            audit(request_actor(request), "periodic_task.update", task,
                  changes={"enabled": {"before": before[task.pk], "after": after[task.pk]}})

    @admin.action(description="Enable selected tasks")
    def enable_tasks(self, request, queryset):
        self._audit_enabled(request, queryset, lambda qs: super(AuditedPeriodicTaskAdmin, self).enable_tasks(
            request, qs))

    @admin.action(description="Disable selected tasks")
    def disable_tasks(self, request, queryset):
        self._audit_enabled(request, queryset, lambda qs: super(AuditedPeriodicTaskAdmin, self).disable_tasks(
            request, qs))

    @admin.action(description="Toggle activity of selected tasks")
    def toggle_tasks(self, request, queryset):
        self._audit_enabled(request, queryset, lambda qs: super(AuditedPeriodicTaskAdmin, self).toggle_tasks(
            request, qs))

    @admin.action(description="Run selected tasks")
    def run_tasks(self, request, queryset):
        for task in queryset:
            audit(request_actor(request), "periodic_task.run", task)
        super().run_tasks(request, queryset)


@admin.register(IntervalSchedule)
class AuditedIntervalScheduleAdmin(AuditedAdminMixin, IntervalScheduleAdmin):
    audit_name = "schedule"


@admin.register(CrontabSchedule)
class AuditedCrontabScheduleAdmin(AuditedAdminMixin, CrontabScheduleAdmin):
    audit_name = "schedule"
