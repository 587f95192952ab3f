"""Page/limit pagination: the body is the bare array; the total and the links go in headers."""

from django.utils.translation import gettext as _
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

DEFAULT_LIMIT = 25
MAX_LIMIT = 100


def _parse_int(params, name: str, default: int, low: int, high: int | None, errors: list[str]) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        errors.append(_("%(field)s must be an integer") % {"field": name})
        return default
    if value < low or (high is not None and value > high):
        if high is None:
            errors.append(_("%(field)s must be at least %(low)s") % {"field": name, "low": low})
        else:
            errors.append(
                _("%(field)s must be between %(low)s and %(high)s") % {"field": name, "low": low, "high": high}
            )
    return value


def parse_page_params(params) -> tuple[int, int]:
    errors: list[str] = []
    page = _parse_int(params, "page", 1, 1, None, errors)
    limit = _parse_int(params, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT, errors)
    if errors:
        raise ValidationError(errors)
    return page, limit


class PagePagination(BasePagination):
    """Two queries per page whatever its size: one COUNT and one LIMIT/OFFSET (or a list slice)."""

    def paginate_queryset(self, queryset, request, view=None):
        self.page, self.limit = parse_page_params(request.query_params)
        self.request = request
        self.total = len(queryset) if isinstance(queryset, list) else queryset.count()
        offset = (self.page - 1) * self.limit
        return list(queryset[offset : offset + self.limit]) if offset < self.total else []

    def get_paginated_response(self, data):
        last_page = max(1, -(-self.total // self.limit))
        url = self.request.build_absolute_uri()
        links = []
        for rel, number, present in (
            ("first", 1, True),
            ("prev", self.page - 1, 1 < self.page <= last_page + 1),
            ("next", self.page + 1, self.page < last_page),
            ("last", last_page, True),
        ):
            if present:
                links.append(f'<{replace_query_param(url, "page", number)}>; rel="{rel}"')
        return Response(data, headers={"X-Total-Count": str(self.total), "Link": ", ".join(links)})

    def get_paginated_response_schema(self, schema):
        return schema

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "page",
                "in": "query",
                "required": False,
                "description": _("Page number (from 1)."),
                "schema": {"type": "integer", "minimum": 1, "default": 1},
            },
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": _("Items per page (1-100)."),
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            },
        ]
