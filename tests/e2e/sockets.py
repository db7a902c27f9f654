"""Cut a page's live websocket the way a network failure does, which `set_offline` cannot
(Playwright's offline mode leaves open sockets alone).

Every websocket the page opens to /ws/live/ is routed through Playwright and connected to the real
server. `cut()` closes that real socket: daphne forgets the page and nothing reaches it any more,
while the page still believes it is connected (as it would until TCP gives up). `page_notices()`
then tells the page its socket died abnormally (1006), and the page must reconnect by itself.
"""

import time
from dataclasses import dataclass, field


@dataclass
class _Socket:
    page_side: object
    server_side: object
    server_closed: bool = False


@dataclass
class LiveSocket:
    page: object
    sockets: list[_Socket] = field(default_factory=list)
    cutting: bool = False

    @classmethod
    def route(cls, page) -> "LiveSocket":
        """Route the page's live websockets; call before the page first loads."""
        live = cls(page)
        page.route_web_socket(lambda url: url.rstrip("/").endswith("/ws/live"), live._connect)
        return live

    def _connect(self, page_side) -> None:
        server_side = page_side.connect_to_server()
        socket = _Socket(page_side, server_side)

        def server_closed(code, reason) -> None:
            socket.server_closed = True
            if not self.cutting:  # the server closed it by itself: the page hears as usual
                page_side.close(code=code, reason=reason)

        server_side.on_close(server_closed)
        self.sockets.append(socket)

    @property
    def opened(self) -> int:
        """How many live websockets the page has opened so far."""
        return len(self.sockets)

    def cut(self, timeout: float = 10.0) -> None:
        """Close the real socket to the server (the page is not told) and wait until it is shut."""
        assert self.sockets, "the page never opened its live websocket"
        socket = self.sockets[-1]
        self.cutting = True
        socket.server_side.close()
        deadline = time.monotonic() + timeout
        while not socket.server_closed:  # Playwright delivers the close during its own calls
            assert time.monotonic() < deadline, "the server side of the websocket did not close"
            self.page.wait_for_timeout(50)

    def page_notices(self) -> None:
        """The page learns that its socket died without a close handshake (code 1006)."""
        self.cutting = False
        self.sockets[-1].page_side.close(code=1006, reason="connection lost")
