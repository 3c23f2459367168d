from django.urls import path

from meters import views

urlpatterns = [
    path("", views.meter_list, name="meter-list"),
    path("add/", views.meter_add, name="meter-add"),
    path("<int:meter_id>/", views.meter_detail, name="meter-detail"),
    path("<int:meter_id>/edit/", views.meter_edit, name="meter-edit"),
    path("<int:meter_id>/delete/", views.meter_delete, name="meter-delete"),
]
