from django.contrib import admin
from django.urls import include, path, re_path

from accounts.login import throttled
from accounts.views import PasswordChangeView
from linkray_site import observability
from linkray_site.api import api, api_not_found

urlpatterns = [
    # Supervisors, load balancers and Prometheus (see docs/deployment.md).
    path("healthz", observability.healthz, name="healthz"),
    path("readyz", observability.readyz, name="readyz"),
    path("metrics", observability.metrics, name="metrics"),
    # The admin's login is throttled and audited like the page's (before admin.site.urls).
    path("admin/login/", throttled(admin.site.login)),
    # The admin's own "change password" is the page's form, so it is audited the same way.
    path("admin/password_change/", PasswordChangeView.as_view()),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("api/", api.urls),
    re_path(r"^api/", api_not_found),  # after every operation: scripts get JSON, not a page
    path("audit/", include("audit.urls")),
    path("meters/", include("meters.urls")),
    path("balancing/", include("balancing.urls")),
    path("", include("gateway.urls")),
]
