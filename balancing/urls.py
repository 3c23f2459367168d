from django.urls import path

from balancing import views
from gateway import urls as gateway_urls  # noqa: F401  registers the charge_box_id path converter

urlpatterns = [
    path("site/", views.site_settings, name="balancing-site"),
    path("site/panel/", views.site_panel, name="balancing-site-panel"),
    path("chargers/<charge_box_id:charge_box_id>/", views.charger_settings, name="charger-balancing"),
    path("chargers/<charge_box_id:charge_box_id>/allocation/", views.charger_allocation, name="charger-balancing-allocation"),
]
