from django.urls import path

from rooms import notification_views, scheduled_views, search_views, views

app_name = "rooms"
urlpatterns = [
    path("", views.home, name="home"),
    path("rooms/list/", views.room_list_fragment, name="room_list"),
    path("rooms/new/", views.room_new, name="new"),
    path("rooms/join/", views.join_address, name="join_address"),
    path("people/", views.people, name="people"),
    path("people/message/", views.message_person, name="message_person"),
    path("explore/", views.explore, name="explore"),
    path("search/", search_views.search_page, name="search"),
    path("security/", views.security, name="security"),
    path("notifications/", notification_views.notifications, name="notifications"),
    path(
        "rooms/<str:room_id>/notifications/",
        notification_views.room_level,
        name="notification_level",
    ),
    path("security/verify/", views.verification_start, name="verification_start"),
    path(
        "security/identities/acknowledge/",
        views.identity_acknowledge,
        name="identity_acknowledge",
    ),
    path(
        "security/verifications/<int:verification_id>/",
        views.verification_answer,
        name="verification_answer",
    ),
    path("rooms/<str:room_id>/", views.room_detail, name="room"),
    path("rooms/<str:room_id>/events/", views.room_events, name="events"),
    path(
        "rooms/<str:room_id>/messages/<int:stream_id>/",
        search_views.message_context,
        name="message",
    ),
    path("rooms/<str:room_id>/send/", views.room_send, name="send"),
    path("rooms/<str:room_id>/outbox/<str:txn_id>/retry/", views.outbox_retry, name="retry"),
    path("rooms/<str:room_id>/read/", views.room_read, name="read"),
    path("rooms/<str:room_id>/scheduled/", scheduled_views.panel, name="scheduled"),
    path("rooms/<str:room_id>/remind/", scheduled_views.remind, name="remind"),
    path("rooms/<str:room_id>/scheduled/new/", scheduled_views.schedule, name="schedule"),
    path(
        "rooms/<str:room_id>/scheduled/<str:txn_id>/edit/",
        scheduled_views.edit,
        name="scheduled_edit",
    ),
    path(
        "rooms/<str:room_id>/scheduled/<str:txn_id>/cancel/",
        scheduled_views.cancel,
        name="scheduled_cancel",
    ),
    path("rooms/<str:room_id>/act/", views.room_act, name="act"),
    path("rooms/<str:room_id>/settings/", views.room_settings, name="settings"),
    path("rooms/<str:room_id>/thread/", views.room_thread, name="thread"),
    path("rooms/<str:room_id>/children/", views.space_children, name="children"),
    path("rooms/<str:room_id>/typing/", views.room_typing, name="typing"),
    path("rooms/<str:room_id>/mentions/", views.mention_suggestions, name="mentions"),
    path("rooms/<str:room_id>/upload/", views.room_upload, name="upload"),
    path("rooms/<str:room_id>/invite/", views.room_invite, name="invite"),
    path("rooms/<str:room_id>/join/", views.room_membership, {"action": "join"}, name="join"),
    path("rooms/<str:room_id>/leave/", views.room_membership, {"action": "leave"}, name="leave"),
    path("media/avatar/<str:server_name>/<str:media_id>", views.avatar, name="avatar"),
    path("media/file/<str:server_name>/<str:media_id>", views.media_file, name="media_file"),
    path("media/encrypted/", views.encrypted_media_file, name="encrypted_media"),
]
