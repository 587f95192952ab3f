"""Role rules: every API view declares, per HTTP method, who may call it.

A view without a declaration is refused (fail closed), and the permission matrix test walks
the URLconf so that a new endpoint without a rule fails the suite.
"""

from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import BasePermission

PUBLIC = "PUBLIC"
AUTHENTICATED = "AUTHENTICATED"
ADMIN = "ADMIN"
SUPERVISOR = "SUPERVISOR"
OPERATOR = "OPERATOR"

RoleRule = str | frozenset


def rule(*roles: str) -> frozenset:
    return frozenset(roles)


def required_roles(view, method: str) -> RoleRule:
    spec = getattr(view, "roles", None)
    if spec is None:
        raise ImproperlyConfigured(f"{type(view).__name__} declares no roles")
    method = "GET" if method == "HEAD" else method
    if method not in spec:
        raise ImproperlyConfigured(f"{type(view).__name__} declares no roles for {method}")
    return spec[method]


def describe_rule(value: RoleRule) -> str:
    if value == PUBLIC:
        return "public"
    if value == AUTHENTICATED:
        return "any authenticated user"
    return ", ".join(sorted(value))


def role_allows(role: str | None, value: RoleRule) -> bool:
    """ADMIN passes every role check (contract section 2)."""
    if value == PUBLIC:
        return True
    if role is None:
        return False
    return value == AUTHENTICATED or role == ADMIN or role in value


class RolePermission(BasePermission):
    def has_permission(self, request, view) -> bool:
        if request.method == "OPTIONS":
            return True
        method = request.method.lower()
        if method not in view.http_method_names or not hasattr(view, method):
            # Not implemented by this view: DRF answers 405, which a missing rule must not turn into a 500.
            return True
        value = required_roles(view, request.method)
        if value == PUBLIC:
            return True
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        return role_allows(user.role, value)
