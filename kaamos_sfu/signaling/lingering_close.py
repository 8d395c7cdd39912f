"""A WebSocket that closes cleanly after a frame too big to read (close code 1009).

aiohttp refuses such a frame at its header, sends the close frame and closes the TCP
connection at once. The client is still sending the rest of the frame, so the kernel
answers what keeps arriving with a reset, and a client busy sending can lose the close
frame with it (it reports 1006). Here the server half-closes instead (a FIN after the close
frame) and goes on reading and dropping what arrives until the client closes too, for at
most LINGER_SECONDS: what HTTP servers do with a request body they refuse.
"""

from __future__ import annotations

import asyncio

from aiohttp import WSCloseCode, web

LINGER_SECONDS = 2.0


class LingeringWebSocket(web.WebSocketResponse):
    _lingering = False

    async def close(
        self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True
    ) -> bool:
        if code == WSCloseCode.MESSAGE_TOO_BIG:
            self._lingering = True
        return await super().close(code=code, message=message, drain=drain)

    def _close_transport(self) -> None:
        transport = self._req.transport if self._req is not None else None
        if not self._lingering or transport is None or not transport.can_write_eof():
            super()._close_transport()
            return
        if not transport.is_closing():
            transport.write_eof()  # after the close frame; aiohttp drops what still arrives
            asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)

    async def linger(self) -> None:
        """After a 1009 close: return once the client has closed its side too, or after
        LINGER_SECONDS (aiohttp closes the connection when the handler returns)."""
        transport = self._req.transport if self._req is not None else None
        deadline = asyncio.get_running_loop().time() + LINGER_SECONDS
        while (
            self._lingering
            and transport is not None
            and not transport.is_closing()
            and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.05)
