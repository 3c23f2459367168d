from django.urls import path, re_path

from gateway import api, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("api/chargers", api.charger_list, name="api-chargers"),
    re_path(r"^api/chargers/(?P<charge_box_id>[^/]+)$", api.charger_detail, name="api-charger"),
    re_path(r"^api/chargers/(?P<charge_box_id>[^/]+)/calls$", api.charger_call, name="api-charger-call"),
]
