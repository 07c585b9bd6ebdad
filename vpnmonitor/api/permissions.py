"""Role permissions: viewers read, operators also clear and configure, ingest keys only push."""

from rest_framework.permissions import BasePermission

from vpnmonitor.api import principals


class CanRead(BasePermission):
    message = "This credential may not read data."

    def has_permission(self, request, view):
        return principals.can_read(request)


class CanOperate(BasePermission):
    message = "This action needs the operator role."

    def has_permission(self, request, view):
        return principals.can_operate(request)


class CanIngest(BasePermission):
    message = "This action needs an ingest or operator credential."

    def has_permission(self, request, view):
        return principals.can_ingest(request)


class ReadOrOperate(BasePermission):
    """Safe methods for readers; anything else for operators."""

    message = "This action needs the operator role."

    def has_permission(self, request, view):
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return principals.can_read(request)
        return principals.can_operate(request)
