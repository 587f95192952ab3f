from django.urls import path

from accounts import api

urlpatterns = [
    path("auth/login", api.LoginView.as_view()),
    path("auth/refresh", api.RefreshView.as_view()),
    path("auth/logout", api.LogoutView.as_view()),
    path("auth/profile", api.ProfileView.as_view()),
    path("auth/change-password", api.ChangePasswordView.as_view()),
    path("auth/register", api.RegisterView.as_view()),
    path("auth/registration-status", api.RegistrationStatusView.as_view()),
    path("users", api.UserListView.as_view()),
    path("users/me", api.MeView.as_view()),
    path("users/online", api.OnlineUsersView.as_view()),
    path("users/me/toggle-online", api.ToggleOnlineView.as_view()),
    path("users/<uuid:user_id>", api.UserDetailView.as_view()),
]
