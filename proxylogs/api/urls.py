"""URL routes of the proxylogs API."""

from django.urls import include, path

urlpatterns = [
    path("", include("proxylogs.traffic.urls")),
]
