from django.urls import path

from rooms import views

app_name = "rooms"
urlpatterns = [
    path("", views.home, name="home"),
    path("rooms/list/", views.room_list_fragment, name="room_list"),
    path("rooms/<str:room_id>/", views.room_detail, name="room"),
    path("media/avatar/<str:server_name>/<str:media_id>", views.avatar, name="avatar"),
]
