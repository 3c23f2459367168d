from django.contrib import admin
from django.urls import include, path

from accounts.login import throttled
from linkray_site.api import api

urlpatterns = [
    # The admin's login is throttled and audited like the page's (before admin.site.urls).
    path("admin/login/", throttled(admin.site.login)),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("api/", api.urls),
    path("audit/", include("audit.urls")),
    path("meters/", include("meters.urls")),
    path("balancing/", include("balancing.urls")),
    path("", include("gateway.urls")),
]
