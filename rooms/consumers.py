"""Websockets: authenticate, join the account's group, forward what notify rendered. No ORM here."""

from channels.generic.websocket import AsyncWebsocketConsumer

from rooms.notify import account_group


class LiveConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        session = self.scope.get("session")
        account_id = session.get("matrix_account_id") if session is not None else None
        if user is None or not user.is_authenticated or not isinstance(account_id, int):
            await self.close(code=4401)
            return
        self.group = account_group(account_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        group = getattr(self, "group", None)
        if group:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def live_hint(self, message: dict) -> None:
        await self.send(text_data=message["html"])
