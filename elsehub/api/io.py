"""Helpers every API view uses: validate input, paginate output."""

from typing import Any

from rest_framework.response import Response

from elsehub.api.pagination import PagePagination


def validated(serializer_class, data: Any, **context: Any) -> dict:
    """Validated input, or the contract's 422 (raised) naming each bad field."""
    serializer = serializer_class(data=data, context=context)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def paginated(view, request, items, serializer_class) -> Response:
    """The page as a bare array, with X-Total-Count and Link headers (two queries for a queryset)."""
    paginator = PagePagination()
    page = paginator.paginate_queryset(items, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)
