import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    ADMIN = "ADMIN", _("Administrator")
    SUPERVISOR = "SUPERVISOR", _("Supervisor")
    OPERATOR = "OPERATOR", _("Operator")


# Roles allowed into Django admin (supervisors steer from there; operators use the console).
STAFF_ROLES = frozenset({Role.ADMIN, Role.SUPERVISOR})


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


class UserManager(BaseUserManager):
    use_in_migrations = True

    def get_by_natural_key(self, email: str):
        return self.get(email=normalize_email(email), deleted_at__isnull=True)

    def create_user(self, email: str, password: str | None = None, **fields):
        user = self.model(email=normalize_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields):
        fields["role"] = Role.ADMIN
        fields.setdefault("is_active", True)
        return self.create_user(email, password, **fields)

    def alive(self):
        return self.filter(deleted_at__isnull=True)


class User(AbstractBaseUser):
    """A person who signs in: email login, one role, and presence for routing.

    Deleting a user is soft (``deleted_at``): conversations and reports keep pointing at the row,
    so the history they took part in stays readable.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(_("email"), max_length=254, unique=True)
    name = models.CharField(_("name"), max_length=150)
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.OPERATOR)
    is_active = models.BooleanField(_("active"), default=True)
    is_online = models.BooleanField(_("online"), default=False)
    online_since = models.DateTimeField(_("online since"), null=True, blank=True)
    last_conversation_assigned_at = models.DateTimeField(_("last conversation assigned at"), null=True, blank=True)
    deleted_at = models.DateTimeField(_("deleted at"), null=True, blank=True)
    former_email = models.EmailField(_("email before deletion"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        ordering = ["name", "created_at"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]
        indexes = [models.Index(fields=["role", "is_online"], name="accounts_user_role_online")]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    # Django admin asks these; roles answer them (no per-object permission tables).
    @property
    def is_staff(self) -> bool:
        return self.is_active and self.deleted_at is None and self.role in STAFF_ROLES

    @property
    def is_superuser(self) -> bool:
        return self.role == Role.ADMIN

    def has_perm(self, perm: str, obj=None) -> bool:
        if not self.is_staff:
            return False
        if self.role == Role.ADMIN:
            return True
        # Supervisors manage everything but people: users are read-only to them (contract §5).
        app_label, _dot, codename = perm.partition(".")
        if app_label == "accounts":
            return codename.startswith("view_")
        return app_label != "token_blacklist"

    def has_perms(self, perm_list, obj=None) -> bool:
        return all(self.has_perm(perm, obj) for perm in perm_list)

    def has_module_perms(self, app_label: str) -> bool:
        if not self.is_staff:
            return False
        return self.role == Role.ADMIN or app_label != "token_blacklist"
