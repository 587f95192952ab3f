from django.db.models import QuerySet
from django.http import Http404

from accounts.models import Role, User


def list_users() -> QuerySet[User]:
    return User.objects.alive().order_by("name", "created_at")


def list_online_operators() -> QuerySet[User]:
    return (
        User.objects.alive().filter(role=Role.OPERATOR, is_active=True, is_online=True).order_by("online_since", "name")
    )


def get_user(*, user_id) -> User:
    user = User.objects.alive().filter(pk=user_id).first()
    if user is None:
        raise Http404
    return user
