"""URL routes of the flowreports API."""

urlpatterns = []
