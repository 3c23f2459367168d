from django.urls import path

from gateway import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
]
