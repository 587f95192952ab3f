"""Every write on users and sessions. Each service owns its transaction."""

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework_simplejwt.exceptions import TokenBackendError, TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import get_md5_hash_password

from accounts.models import Role, User, normalize_email
from elsehub.api.errors import ApplicationError, ConflictError

logger = logging.getLogger(__name__)


class InvalidCredentials(ApplicationError):
    status_code = 401

    def __init__(self, message=None):
        super().__init__(message or _("Invalid credentials"), code="invalid_credentials")


class TooManyLoginAttempts(ApplicationError):
    status_code = 429

    def __init__(self, seconds: int):
        minutes = max(1, -(-seconds // 60))
        super().__init__(
            _("Too many failed login attempts. Try again in %(minutes)s minute(s).") % {"minutes": minutes},
            code="login_locked",
        )
        self.retry_after = seconds


@dataclass(frozen=True)
class Session:
    user: User
    access_token: str
    refresh_token: str


# ------------------------------------------------------------------------------
# Brute-force protection
# ------------------------------------------------------------------------------


def _attempt_keys(*, email: str, client_ip: str) -> list[tuple[str, int]]:
    return [
        (f"login:email:{normalize_email(email)}", settings.LOGIN_LOCK_AFTER_EMAIL),
        (f"login:ip:{client_ip}", settings.LOGIN_LOCK_AFTER_IP),
    ]


def _lock_remaining(*, email: str, client_ip: str) -> int:
    now = time.time()
    remaining = 0.0
    for key, _limit in _attempt_keys(email=email, client_ip=client_ip):
        until = cache.get(f"{key}:locked")
        if until:
            remaining = max(remaining, until - now)
    return int(remaining + 0.999)


def _record_failure(*, email: str, client_ip: str) -> int:
    """Count one failed login per email and per IP; lock a key that reaches its limit."""
    window = settings.LOGIN_FAILURE_WINDOW
    email_failures = 0
    for key, limit in _attempt_keys(email=email, client_ip=client_ip):
        cache.add(key, 0, window)
        try:
            failures = cache.incr(key)
        except ValueError:  # the key expired between add and incr
            cache.set(key, 1, window)
            failures = 1
        if failures >= limit:
            cache.set(f"{key}:locked", time.time() + window, window)
            logger.warning("accounts.login.locked", extra={"key": key.split(":")[1], "failures": failures})
        if key.startswith("login:email:"):
            email_failures = failures
    return email_failures


def _slow_down(failures: int) -> None:
    """Each failure past the threshold costs the caller more time (capped at 8 steps)."""
    over = failures - settings.LOGIN_SLOWDOWN_AFTER
    if over >= 0 and settings.LOGIN_SLOWDOWN_SECONDS > 0:
        time.sleep(settings.LOGIN_SLOWDOWN_SECONDS * min(2**over, 8))


def authenticate_user(*, email: str, password: str, client_ip: str) -> User:
    """Check a login. A locked email or IP is refused even with the right password."""
    locked_for = _lock_remaining(email=email, client_ip=client_ip)
    if locked_for > 0:
        raise TooManyLoginAttempts(locked_for)
    user = User.objects.alive().filter(email=normalize_email(email)).first()
    if user is None:
        User().set_password(password)  # same hashing cost as a real check: no user enumeration by timing
    elif user.check_password(password) and user.is_active:
        cache.delete(_attempt_keys(email=email, client_ip=client_ip)[0][0])
        return user
    failures = _record_failure(email=email, client_ip=client_ip)
    _slow_down(failures)
    raise InvalidCredentials()


# ------------------------------------------------------------------------------
# Tokens
# ------------------------------------------------------------------------------


def issue_session(*, user: User) -> Session:
    refresh = RefreshToken.for_user(user)
    return Session(user=user, access_token=str(refresh.access_token), refresh_token=str(refresh))


def _parse_refresh(raw: str) -> RefreshToken:
    try:
        # verify=True also checks the blacklist; the row lock below settles races.
        return RefreshToken(raw)
    except TokenError:
        raise InvalidCredentials(_("Invalid or expired refresh token")) from None


def _consume_refresh(token: RefreshToken) -> None:
    """Blacklist a refresh token exactly once; a second use of the same token is refused.

    Locks the outstanding-token row so that two concurrent refreshes cannot both succeed.
    """
    jti = token[jwt_settings.JTI_CLAIM]
    outstanding = OutstandingToken.objects.select_for_update().filter(jti=jti).order_by().first()
    if outstanding is None:
        raise InvalidCredentials(_("Invalid or expired refresh token"))
    _blacklisted, created = BlacklistedToken.objects.get_or_create(token=outstanding)
    if not created:
        raise InvalidCredentials(_("Invalid or expired refresh token"))


def refresh_session(*, refresh_token: str) -> Session:
    """Rotate: the presented refresh token is spent and a new pair is issued."""
    token = _parse_refresh(refresh_token)
    with transaction.atomic():
        _consume_refresh(token)
        user = User.objects.alive().filter(pk=token.get(jwt_settings.USER_ID_CLAIM), is_active=True).first()
        if user is None or token.get(jwt_settings.REVOKE_TOKEN_CLAIM) != get_md5_hash_password(user.password):
            raise InvalidCredentials(_("Invalid or expired refresh token"))
    return issue_session(user=user)


def revoke_refresh_token(*, refresh_token: str) -> None:
    """Logout. Revoking an already revoked token is a no-op; a forged or expired one is refused."""
    try:
        payload = token_backend.decode(refresh_token, verify=True)
    except TokenBackendError:
        raise InvalidCredentials(_("Invalid or expired refresh token")) from None
    if payload.get(jwt_settings.TOKEN_TYPE_CLAIM) != RefreshToken.token_type:
        raise InvalidCredentials(_("Invalid or expired refresh token"))
    RefreshToken(refresh_token, verify=False).blacklist()


def revoke_all_sessions(*, user: User) -> int:
    """Blacklist every outstanding refresh token of the user. Safe to run twice."""
    pending = OutstandingToken.objects.filter(user=user, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True)
    tokens = list(pending)
    BlacklistedToken.objects.bulk_create([BlacklistedToken(token=token) for token in tokens], ignore_conflicts=True)
    return len(tokens)


def change_password(*, user: User, current_password: str, new_password: str) -> Session:
    if not user.check_password(current_password):
        raise ApplicationError(_("Current password is incorrect"), code="wrong_password", status_code=400)
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password", "updated_at"])
        revoke_all_sessions(user=user)
    # The old access tokens die with the old password hash; this pair keeps the caller signed in.
    return issue_session(user=user)


# ------------------------------------------------------------------------------
# Users
# ------------------------------------------------------------------------------


def _email_taken(email: str, *, exclude: User | None = None) -> bool:
    query = User.objects.filter(email=email)
    if exclude is not None:
        query = query.exclude(pk=exclude.pk)
    return query.exists()


def _raise_email_taken() -> None:
    raise ConflictError(_("Email is already in use"), code="email_taken")


def create_user(*, name: str, email: str, password: str, role: str, is_active: bool = True) -> User:
    email = normalize_email(email)
    if _email_taken(email):
        _raise_email_taken()
    try:
        with transaction.atomic():
            return User.objects.create_user(email, password, name=name.strip(), role=role, is_active=is_active)
    except IntegrityError:
        _raise_email_taken()


def register_user(*, name: str, email: str, password: str) -> User:
    if not settings.ALLOW_USER_REGISTRATION:
        raise ApplicationError(_("User registration is disabled"), code="registration_disabled", status_code=403)
    return create_user(name=name, email=email, password=password, role=Role.OPERATOR)


def _lock_active_admins() -> set:
    """Lock every active admin row, in primary-key order. Caller holds a transaction.

    Taken before the target row, in a fixed order: two admins demoting each other at once then
    queue on the same first row instead of deadlocking, and the second sees the first's change.
    """
    return set(
        User.objects.select_for_update()
        .filter(role=Role.ADMIN, is_active=True, deleted_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _refuse_last_admin(*, user: User, active_admins: set) -> None:
    if not active_admins - {user.pk}:
        raise ApplicationError(
            _("This change would leave the system without an active administrator"), code="last_admin"
        )


def _loses_admin(user: User, *, role: str | None, is_active: bool | None) -> bool:
    demoted = role is not None and role != Role.ADMIN
    return user.role == Role.ADMIN and user.is_active and (demoted or is_active is False)


def check_user_change(
    *, user: User | None, email: str | None, role: str | None = None, is_active: bool | None = None
) -> None:
    """Raise the refusal that creating or updating would raise, without writing (for admin forms)."""
    if email is not None and _email_taken(normalize_email(email), exclude=user):
        _raise_email_taken()
    if user is not None and _loses_admin(user, role=role, is_active=is_active):
        with transaction.atomic():
            _refuse_last_admin(user=user, active_admins=_lock_active_admins())


def update_user(
    *,
    user: User,
    name: str | None = None,
    email: str | None = None,
    password: str | None = None,
    role: str | None = None,
    is_active: bool | None = None,
) -> User:
    with transaction.atomic():
        active_admins = _lock_active_admins()
        user = User.objects.select_for_update().get(pk=user.pk)
        if _loses_admin(user, role=role, is_active=is_active):
            _refuse_last_admin(user=user, active_admins=active_admins)
        if email is not None:
            email = normalize_email(email)
            if email != user.email and _email_taken(email, exclude=user):
                _raise_email_taken()
            user.email = email
        if name is not None:
            user.name = name.strip()
        if role is not None:
            user.role = role
        if is_active is not None:
            user.is_active = is_active
            if not is_active:
                user.is_online, user.online_since = False, None
        if password is not None:
            user.set_password(password)
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError:
            _raise_email_taken()
        if password is not None or is_active is False:
            revoke_all_sessions(user=user)
    return user


def delete_user(*, user: User) -> None:
    """Soft delete: the row stays so that history keeps its name; email and sessions are freed."""
    with transaction.atomic():
        active_admins = _lock_active_admins()
        user = User.objects.select_for_update().get(pk=user.pk)
        if user.deleted_at is not None:
            return
        if _loses_admin(user, role=None, is_active=False):
            _refuse_last_admin(user=user, active_admins=active_admins)
        user.former_email = user.email
        user.email = f"deleted-{user.pk}@deleted.invalid"
        user.is_active = False
        user.is_online, user.online_since = False, None
        user.deleted_at = timezone.now()
        user.set_unusable_password()
        user.save()
        revoke_all_sessions(user=user)


def set_online(*, user: User, is_online: bool) -> User:
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        if is_online and not user.is_online:
            user.online_since = timezone.now()
        elif not is_online:
            user.online_since = None
        user.is_online = is_online
        user.save(update_fields=["is_online", "online_since", "updated_at"])
    return user
