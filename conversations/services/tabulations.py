"""Every write on tabulations (closing categories). Each service owns its transaction.

Names are unique without regard to case among live tabulations; a partial unique index on
``lower(name)`` backs the check, so a race ends as the same 409. Deleting is soft: conversations
and closures it classified keep pointing at it.
"""

from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from conversations.models import Tabulation
from elsehub.api.errors import ConflictError


def _name_taken_error() -> ConflictError:
    return ConflictError(_("Tabulation already exists"), code="tabulation_exists")


def _name_taken(name: str, *, exclude: Tabulation | None = None) -> bool:
    query = Tabulation.objects.filter(deleted_at__isnull=True, name__iexact=name)
    if exclude is not None:
        query = query.exclude(pk=exclude.pk)
    return query.exists()


def check_tabulation_change(*, tabulation: Tabulation | None, name: str) -> None:
    """Raise the refusal that saving would raise, without writing (for admin forms)."""
    if _name_taken(name.strip(), exclude=tabulation):
        raise _name_taken_error()


def create_tabulation(*, name: str) -> Tabulation:
    tabulation = Tabulation(name=name.strip())
    if _name_taken(tabulation.name):
        raise _name_taken_error()
    try:
        with transaction.atomic():
            tabulation.save(force_insert=True)
    except IntegrityError:  # a concurrent create of the same name won the race
        raise _name_taken_error() from None
    return tabulation


def update_tabulation(*, tabulation: Tabulation, name: str | None = None) -> Tabulation:
    """Rename; ``None`` leaves the name alone. A tabulation deleted meanwhile is 404."""
    with transaction.atomic():
        tabulation = Tabulation.objects.select_for_update().filter(pk=tabulation.pk, deleted_at__isnull=True).first()
        if tabulation is None:
            raise Http404
        if name is not None:
            name = name.strip()
            if _name_taken(name, exclude=tabulation):
                raise _name_taken_error()
            tabulation.name = name
        try:
            with transaction.atomic():
                tabulation.save()
        except IntegrityError:
            raise _name_taken_error() from None
    return tabulation


def delete_tabulation(*, tabulation: Tabulation) -> None:
    """Soft delete: the row stays for the history that uses it. Deleting twice is a no-op."""
    now = timezone.now()
    Tabulation.objects.filter(pk=tabulation.pk, deleted_at__isnull=True).update(deleted_at=now, updated_at=now)
