from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.serializers import (
    ChangePasswordInput,
    LoginInput,
    RefreshInput,
    RegisterInput,
    RegistrationStatusOutput,
    SessionOutput,
    ToggleOnlineInput,
    UserCreateInput,
    UserOutput,
    UserUpdateInput,
)
from elsehub.api.io import paginated, validated
from elsehub.api.middleware import client_ip
from elsehub.api.pagination import PagePagination
from elsehub.api.permissions import ADMIN, AUTHENTICATED, PUBLIC, SUPERVISOR, rule


def _session_body(session: services.Session) -> dict:
    return {
        "user": UserOutput(session.user).data,
        "tokens": {
            "accessToken": session.access_token,
            "refreshToken": session.refresh_token,
            "accessTokenExpiresIn": settings.JWT_ACCESS_TOKEN_TTL_LABEL,
            "refreshTokenExpiresIn": settings.JWT_REFRESH_TOKEN_TTL_LABEL,
        },
    }


class PublicView(APIView):
    # No credentials read: a stale token in the header must not stop a login or a refresh.
    authentication_classes = ()


class LoginView(PublicView):
    roles = {"POST": PUBLIC}

    @extend_schema(request=LoginInput, responses={200: SessionOutput}, tags=["auth"], summary="Login")
    def post(self, request: Request) -> Response:
        data = validated(LoginInput, request.data)
        user = services.authenticate_user(email=data["email"], password=data["password"], client_ip=client_ip(request))
        return Response(_session_body(services.issue_session(user=user)))


class RefreshView(PublicView):
    roles = {"POST": PUBLIC}

    @extend_schema(request=RefreshInput, responses={200: SessionOutput}, tags=["auth"], summary="Rotate tokens")
    def post(self, request: Request) -> Response:
        data = validated(RefreshInput, request.data)
        return Response(_session_body(services.refresh_session(refresh_token=data["refreshToken"])))


class LogoutView(PublicView):
    roles = {"POST": PUBLIC}

    @extend_schema(request=RefreshInput, responses={204: None}, tags=["auth"], summary="Revoke a refresh token")
    def post(self, request: Request) -> Response:
        data = validated(RefreshInput, request.data)
        services.revoke_refresh_token(refresh_token=data["refreshToken"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProfileView(APIView):
    roles = {"GET": AUTHENTICATED}

    @extend_schema(responses={200: UserOutput}, tags=["auth"], summary="Current user's profile")
    def get(self, request: Request) -> Response:
        return Response(UserOutput(request.user).data)


class ChangePasswordView(APIView):
    roles = {"PUT": AUTHENTICATED}

    @extend_schema(
        request=ChangePasswordInput,
        responses={200: SessionOutput},
        tags=["auth"],
        summary="Change own password",
        description="Ends every other session of the user and returns a fresh token pair.",
    )
    def put(self, request: Request) -> Response:
        data = validated(ChangePasswordInput, request.data)
        session = services.change_password(
            user=request.user, current_password=data["currentPassword"], new_password=data["newPassword"]
        )
        return Response(_session_body(session))


class RegisterView(PublicView):
    roles = {"POST": PUBLIC}

    @extend_schema(
        request=RegisterInput,
        responses={201: SessionOutput},
        tags=["auth"],
        summary="Self-registration (creates an OPERATOR)",
        description="Only when ALLOW_USER_REGISTRATION is true; 403 otherwise.",
    )
    def post(self, request: Request) -> Response:
        data = validated(RegisterInput, request.data)
        user = services.register_user(name=data["name"], email=data["email"], password=data["password"])
        return Response(_session_body(services.issue_session(user=user)), status=status.HTTP_201_CREATED)


class RegistrationStatusView(PublicView):
    roles = {"GET": PUBLIC}

    @extend_schema(responses={200: RegistrationStatusOutput}, tags=["auth"], summary="Is self-registration open?")
    def get(self, request: Request) -> Response:
        return Response({"enabled": settings.ALLOW_USER_REGISTRATION})


class UserListView(APIView):
    roles = {"GET": rule(ADMIN, SUPERVISOR), "POST": rule(ADMIN)}
    pagination_class = PagePagination

    @extend_schema(responses={200: UserOutput(many=True)}, tags=["users"], summary="List users")
    def get(self, request: Request) -> Response:
        return paginated(self, request, selectors.list_users(), UserOutput)

    @extend_schema(request=UserCreateInput, responses={201: UserOutput}, tags=["users"], summary="Create a user")
    def post(self, request: Request) -> Response:
        data = validated(UserCreateInput, request.data)
        user = services.create_user(
            name=data["name"],
            email=data["email"],
            password=data["password"],
            role=data["role"],
            is_active=data["isActive"],
        )
        return Response(UserOutput(user).data, status=status.HTTP_201_CREATED)


class MeView(APIView):
    roles = {"GET": AUTHENTICATED}

    @extend_schema(responses={200: UserOutput}, tags=["users"], summary="Current user")
    def get(self, request: Request) -> Response:
        return Response(UserOutput(request.user).data)


class OnlineUsersView(APIView):
    roles = {"GET": rule(ADMIN, SUPERVISOR)}
    pagination_class = PagePagination

    @extend_schema(responses={200: UserOutput(many=True)}, tags=["users"], summary="Operators online now")
    def get(self, request: Request) -> Response:
        return paginated(self, request, selectors.list_online_operators(), UserOutput)


class ToggleOnlineView(APIView):
    roles = {"PATCH": AUTHENTICATED}

    @extend_schema(request=ToggleOnlineInput, responses={200: UserOutput}, tags=["users"], summary="Set own presence")
    def patch(self, request: Request) -> Response:
        data = validated(ToggleOnlineInput, request.data)
        return Response(UserOutput(services.set_online(user=request.user, is_online=data["isOnline"])).data)


class UserDetailView(APIView):
    roles = {"PATCH": rule(ADMIN), "DELETE": rule(ADMIN)}

    @extend_schema(request=UserUpdateInput, responses={200: UserOutput}, tags=["users"], summary="Update a user")
    def patch(self, request: Request, user_id) -> Response:
        user = selectors.get_user(user_id=user_id)
        data = validated(UserUpdateInput, request.data)
        user = services.update_user(
            user=user,
            name=data.get("name"),
            email=data.get("email"),
            password=data.get("password"),
            role=data.get("role"),
            is_active=data.get("isActive"),
        )
        return Response(UserOutput(user).data)

    @extend_schema(responses={204: None}, tags=["users"], summary="Delete a user (history is kept)")
    def delete(self, request: Request, user_id) -> Response:
        services.delete_user(user=selectors.get_user(user_id=user_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
