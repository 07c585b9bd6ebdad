"""URL routes of the monitoring API."""

urlpatterns = []
