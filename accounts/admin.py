"""The admin asks the same rights as the pages and the API (accounts.roles), never Django's
per-model permissions: `RightsAdminMixin` maps has_*_permission to rights, and audits every
save and delete made through the admin with before/after."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.serializers.json import DjangoJSONEncoder

from accounts import services
from accounts.access import client_address, principal_for_user, user_rights
from accounts.models import ApiToken
from accounts.roles import ADMINISTER, VIEW_SITE
from audit.services import changed, record


def jsonable(values: dict) -> dict:
    return json.loads(json.dumps(values, cls=DjangoJSONEncoder, default=str))


def admin_principal(request):
    return principal_for_user(request.user, client_address(request))


class RightsAdminMixin:
    """Rights per admin operation; None means nobody (not even a superuser)."""

    view_right: str | None = VIEW_SITE
    change_right: str | None = ADMINISTER
    add_right: str | None = ADMINISTER
    delete_right: str | None = ADMINISTER
    audit_name: str = ""  # e.g. "meter": actions meter.create / meter.update / meter.delete

    @staticmethod
    def _holds(request, right: str | None) -> bool:
        return right is not None and request.user.is_active and right in user_rights(request.user)

    def has_module_permission(self, request) -> bool:
        return self._holds(request, self.view_right) or self._holds(request, self.change_right)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._holds(request, self.view_right) or self.has_change_permission(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._holds(request, self.change_right)

    def has_add_permission(self, request, *args) -> bool:
        return self._holds(request, self.add_right)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._holds(request, self.delete_right)

    def _audit_name(self) -> str:
        return self.audit_name or self.model._meta.model_name

    def _target(self, obj) -> str:
        return f"{self._audit_name()}:{obj.pk} {obj}"

    @staticmethod
    def _many_to_many(obj) -> set[str]:
        return {field.name for field in obj._meta.many_to_many}

    def save_model(self, request, obj, form, change):
        many = self._many_to_many(obj)
        names = list(form.changed_data) if change else [name for name in form.fields if hasattr(obj, name)]
        # Many-to-many fields (a user's groups) are saved later, in save_related: audited there.
        names = [name for name in names if name not in many]
        request._audit_related = {
            name: sorted(str(item) for item in getattr(obj, name).all()) if change and obj.pk else []
            for name in form.changed_data
            if name in many
        }
        before = None
        if change:
            stored = type(obj).objects.filter(pk=obj.pk).first()
            before = jsonable({name: getattr(stored, name, None) for name in names}) if stored else {}
        self.write_model(request, obj, form, change)
        after = jsonable({name: getattr(obj, name, None) for name in names if not name.startswith("password")})
        if before is not None:
            before = {name: value for name, value in before.items() if not name.startswith("password")}
            before, after = changed(before, after)
            if after is None:
                return
        action = f"{self._audit_name()}.{'update' if change else 'create'}"
        record(admin_principal(request), action, self._target(obj), before=before, after=after, outcome="admin")

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        before = getattr(request, "_audit_related", {})
        if not before:
            return
        obj = form.instance
        after = {name: sorted(str(item) for item in getattr(obj, name).all()) for name in before}
        before, after = changed(before, after)
        if after is not None:
            action = f"{self._audit_name()}.update"
            record(admin_principal(request), action, self._target(obj), before=before, after=after, outcome="admin")

    def write_model(self, request, obj, form, change) -> None:
        """The save itself; override instead of save_model to keep the audit."""
        super().save_model(request, obj, form, change)

    def delete_model(self, request, obj):
        target, before = self._target(obj), jsonable({"name": str(obj)})
        super().delete_model(request, obj)
        record(admin_principal(request), f"{self._audit_name()}.delete", target, before=before, outcome="admin")

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


admin.site.unregister(get_user_model())
admin.site.unregister(Group)


@admin.register(get_user_model())
class LinkRayUserAdmin(RightsAdminMixin, UserAdmin):
    view_right = ADMINISTER
    audit_name = "user"

    def _target(self, obj) -> str:
        return f"user:{obj.get_username()}"  # as the API and adduser name it

    def log_change(self, request, obj, message):
        # The admin's own password form saves without save_model: audit it here.
        if request.path.endswith("/password/"):
            record(
                admin_principal(request),
                "user.update",
                f"user:{obj.get_username()}",
                before={"password": "(old)"},
                after={"password": "(changed)"},
                outcome="admin",
            )
        return super().log_change(request, obj, message)


@admin.register(Group)
class LinkRayGroupAdmin(RightsAdminMixin, GroupAdmin):
    view_right = ADMINISTER
    audit_name = "group"


class ApiTokenAddForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["name", "role", "user"]


@admin.register(ApiToken)
class ApiTokenAdmin(RightsAdminMixin, admin.ModelAdmin):
    """Create (the secret is shown once, as a message), list, revoke. Never edit or delete:
    revoked tokens stay for the audit trail, and no secret is ever shown again."""

    view_right = ADMINISTER
    change_right = None
    delete_right = None
    list_display = ["name", "role", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["role", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "user__username"]
    readonly_fields = ["name", "role", "user", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]
    form = ApiTokenAddForm

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            new = services.create_token(admin_principal(request), obj.name, obj.role, obj.user)
        except services.AccountError as error:
            messages.error(request, error.message)
            return
        obj.pk = new.token.pk
        messages.warning(request, f"Token {new.token.name}: {new.secret} (copy it now: it is not shown again)")

    def has_administer_permission(self, request) -> bool:
        return self._holds(request, ADMINISTER)

    @admin.action(description="Revoke the selected tokens", permissions=["administer"])
    def revoke(self, request, queryset):
        principal = admin_principal(request)
        for token in queryset:
            services.revoke_token(principal, token)
        messages.success(request, f"{queryset.count()} token(s) revoked.")
