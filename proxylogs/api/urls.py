"""URL routes of the proxylogs API."""

urlpatterns = []
