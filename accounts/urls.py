from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", views.sign_in, name="login"),
    path("logout/", views.sign_out, name="logout"),
    path("sso/return/", views.sso_return, name="sso_return"),
    path("sso/", views.sso_begin, {"idp_id": ""}, name="sso_begin_default"),
    path("sso/<str:idp_id>/", views.sso_begin, name="sso_begin"),
]
