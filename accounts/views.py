"""Pages of people and tokens: password change (everyone), API tokens (administrators)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_http_methods

from accounts import services
from accounts.access import request_principal, right_required
from accounts.models import ApiToken
from accounts.roles import ADMINISTER, TOKEN_ROLES
from audit.services import record


class PasswordChangeView(LoginRequiredMixin, auth_views.PasswordChangeView):
    """Django keeps this session (update_session_auth_hash) and the changed password hash
    logs out every other session of the person."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("password_change_done")

    def form_valid(self, form):
        response = super().form_valid(form)
        principal = request_principal(self.request)
        record(
            principal,
            "user.password_change",
            f"user:{self.request.user.get_username()}",
            before={"password": "(old)"},
            after={"password": "(changed)"},
        )
        messages.success(self.request, "Password changed; your other sessions are logged out.")
        return response


class PasswordChangeDoneView(LoginRequiredMixin, auth_views.PasswordChangeDoneView):
    template_name = "accounts/password_change_done.html"


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    role = forms.ChoiceField(choices=[(role, role) for role in TOKEN_ROLES])


@right_required(ADMINISTER)
@require_http_methods(["GET", "POST"])
def api_tokens(request):
    form = TokenForm(request.POST or None)
    new_secret = None
    if request.method == "POST" and form.is_valid():
        try:
            new = services.create_token(request.principal, form.cleaned_data["name"], form.cleaned_data["role"])
        except services.AccountError as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            new_secret = new.secret
            form = TokenForm()
    tokens = ApiToken.objects.select_related("user")
    status = 400 if form.is_bound and form.errors else 200
    context = {"form": form, "tokens": tokens, "new_secret": new_secret}
    return render(request, "accounts/tokens.html", context, status=status)


@right_required(ADMINISTER)
@require_http_methods(["POST"])
def api_token_revoke(request, token_id: int):
    token = get_object_or_404(ApiToken, pk=token_id)
    services.revoke_token(request.principal, token)
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("api-tokens")
