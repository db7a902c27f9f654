"""Every room the organisation's accounts are in: members, encryption, bridges, message count,
last activity; and the homeserver's room actions (make room admin, block, delete with purge),
each in the audit log. The rows themselves are the sync's: nobody edits them here."""

from datetime import UTC, datetime

from django.contrib import admin, messages
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, Subquery
from django.template.response import TemplateResponse
from django.utils.html import format_html

from accounts.matrix.errors import MatrixError
from console import rooms as room_actions
from console.forms import DeleteRoomForm, MakeRoomAdminForm
from rooms.models import Event, Membership, Room, RoomState
from rooms.selectors import BRIDGE_TYPES

MESSAGE_TYPES = ("m.room.message", "m.room.encrypted")


def _count(queryset) -> Subquery:
    counted = queryset.order_by().values("room").annotate(n=Count("pk")).values("n")
    return Subquery(counted, output_field=IntegerField())


class OrgRoomFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [
            ("encrypted", "encrypted"),
            ("plain", "not encrypted"),
            ("bridged", "bridged"),
            ("space", "spaces"),
        ]

    def queryset(self, request, queryset):
        match self.value():
            case "encrypted":
                return queryset.filter(encrypted=True)
            case "plain":
                return queryset.filter(encrypted=False)
            case "bridged":
                return queryset.filter(bridged=True)
            case "space":
                return queryset.filter(space=True)
        return queryset


@admin.register(Room)
class OrgRoomAdmin(admin.ModelAdmin):
    list_display = (
        "room_name",
        "members",
        "our_members",
        "encrypted_flag",
        "bridged_flag",
        "messages",
        "last_activity",
    )
    list_filter = (OrgRoomFilter,)
    search_fields = ("room_id", "memberships__display_name")
    fields = ("room_id", "created_at", "member_list")
    readonly_fields = fields
    actions = ["make_room_admin", "block_rooms", "unblock_rooms", "delete_rooms"]
    list_per_page = 50

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("rooms.change_room")

    def has_purge_permission(self, request) -> bool:
        return request.user.has_perm("rooms.delete_room")

    def get_queryset(self, request):
        room = OuterRef("pk")
        joined = Membership.objects.filter(room=room, membership="join")
        return (
            super()
            .get_queryset(request)
            .filter(Exists(joined.filter(account__is_active=True)))
            .annotate(
                name=Subquery(
                    Membership.objects.filter(room=room)
                    .exclude(display_name="")
                    .values("display_name")[:1]
                ),
                member_count=Subquery(
                    Membership.objects.filter(room=room)
                    .order_by("-joined_member_count")
                    .values("joined_member_count")[:1]
                ),
                our_count=_count(joined),
                encrypted=Exists(Membership.objects.filter(room=room, is_encrypted=True)),
                space=Exists(Membership.objects.filter(room=room, is_space=True)),
                bridged=Exists(RoomState.objects.filter(room=room, event_type__in=BRIDGE_TYPES)),
                message_count=_count(Event.objects.filter(room=room, event_type__in=MESSAGE_TYPES)),
                last_ts=Subquery(
                    Membership.objects.filter(room=room)
                    .order_by("-last_activity_ts")
                    .values("last_activity_ts")[:1]
                ),
            )
        )

    @admin.display(description="room", ordering="name")
    def room_name(self, room):
        return format_html("{}<br><small>{}</small>", room.name or "(no name)", room.room_id)

    @admin.display(description="members", ordering="member_count")
    def members(self, room) -> int:
        return room.member_count or 0

    @admin.display(description="ours joined", ordering="our_count")
    def our_members(self, room) -> int:
        return room.our_count or 0

    @admin.display(description="encrypted", boolean=True, ordering="encrypted")
    def encrypted_flag(self, room) -> bool:
        return room.encrypted

    @admin.display(description="bridged", boolean=True, ordering="bridged")
    def bridged_flag(self, room) -> bool:
        return room.bridged

    @admin.display(description="messages", ordering="message_count")
    def messages(self, room) -> int:
        return room.message_count or 0

    @admin.display(description="last activity", ordering="last_ts")
    def last_activity(self, room):
        if not room.last_ts:
            return "—"
        return datetime.fromtimestamp(room.last_ts / 1000, tz=UTC)

    @admin.display(description="joined members")
    def member_list(self, room) -> str:
        members = RoomState.objects.filter(room=room, event_type="m.room.member").filter(
            Q(content__membership="join")
        )
        return ", ".join(sorted(members.values_list("state_key", flat=True))) or "—"

    # --- actions through the homeserver ---

    def _each(self, request, queryset, done: str, act) -> None:
        count = 0
        for room in queryset:
            try:
                act(room)
                count += 1
            except (MatrixError, room_actions.RoomActionRefused) as error:
                self.message_user(request, f"{room.room_id}: {error.message}", messages.ERROR)
        if count:
            self.message_user(request, f"{done}: {count} room(s).", messages.SUCCESS)

    def _form_page(self, request, queryset, *, action: str, form, title: str, button: str):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "rooms": list(queryset),
            "form": form,
            "action": action,
            "button": button,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/rooms/room/action.html", context)

    @admin.action(description="Make someone room admin…", permissions=["manage"])
    def make_room_admin(self, request, queryset):
        form = MakeRoomAdminForm(request.POST if "confirm" in request.POST else None)
        if "confirm" in request.POST and form.is_valid():
            user_id = form.cleaned_data["user_id"]
            self._each(
                request,
                queryset,
                f"{user_id} is now room admin",
                lambda room: room_actions.room_make_admin(
                    room_id=room.room_id, user_id=user_id, request=request
                ),
            )
            return None
        return self._form_page(
            request,
            queryset,
            action="make_room_admin",
            form=form,
            title="Make someone room admin",
            button="Make room admin",
        )

    @admin.action(description="Block selected rooms (nobody can join)", permissions=["manage"])
    def block_rooms(self, request, queryset):
        self._each(
            request,
            queryset,
            "Blocked",
            lambda room: room_actions.room_block(room_id=room.room_id, block=True, request=request),
        )

    @admin.action(description="Unblock selected rooms", permissions=["manage"])
    def unblock_rooms(self, request, queryset):
        self._each(
            request,
            queryset,
            "Unblocked",
            lambda room: room_actions.room_block(
                room_id=room.room_id, block=False, request=request
            ),
        )

    @admin.action(description="Delete selected rooms on the homeserver…", permissions=["purge"])
    def delete_rooms(self, request, queryset):
        form = DeleteRoomForm(request.POST if "confirm" in request.POST else None)
        if "confirm" in request.POST and form.is_valid():
            options = form.cleaned_data
            self._each(
                request,
                queryset,
                "Deletion started",
                lambda room: room_actions.room_delete(
                    room_id=room.room_id,
                    purge=options["purge"],
                    block=options["block"],
                    message=options["message"],
                    request=request,
                ),
            )
            return None
        return self._form_page(
            request,
            queryset,
            action="delete_rooms",
            form=form,
            title="Delete rooms on the homeserver",
            button="Delete",
        )
