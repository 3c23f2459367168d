from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from linkray_site import observability
from linkray_site.api import api

urlpatterns = [
    path("healthz", observability.healthz, name="healthz"),
    path("readyz", observability.readyz, name="readyz"),
    path("metrics", observability.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/", api.urls),
    path("meters/", include("meters.urls")),
    path("", include("gateway.urls")),
]
