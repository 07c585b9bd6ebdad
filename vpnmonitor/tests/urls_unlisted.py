"""A URL configuration with an API view that the access policy's table does not list."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView


class Unlisted(APIView):
    def get(self, request):
        return Response({"data": "secret"})


urlpatterns = [path("unlisted", Unlisted.as_view(), name="unlisted")]
