"""The simulator's WebSocket server: sessions, one per app key, and the push loop.

Any path is accepted. A session is bound to an app key by the approval key of
its first accepted message; a second open session for the same app key gets
the OPSP8996 reply and is closed. Every ``push_interval_seconds`` the server
sends each session the frames of its symbols' new trades (several records per
frame when trades cluster) and, every ``ping_interval_seconds``, a PINGPONG
text; a client may answer with the echoed text or a pong frame (both are
accepted, neither is required). No protocol-level pings are sent. A session whose
client stops reading for 5 s is dropped rather than stalling the others.

Closing is bounded: the push loop stops, open sessions get ``CLOSE_GRACE_SECONDS`` for
the closing handshake, and any still open then (a client that stopped reading leaves
the close frame stuck behind a full send buffer, which no handshake timeout covers) are
cut.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from observer.sim.calendar import kst
from observer.sim.state import ExchangeState
from observer.sim.wsproto import (
    REPLIES,
    FramePump,
    Registrations,
    parse_control,
    pingpong,
    reply,
)

log = logging.getLogger(__name__)
SLOW_CLIENT_SECONDS = 5.0  # a push that cannot be written this long drops the session
CLOSE_GRACE_SECONDS = 2.0  # on close: the closing handshake's time before sessions are cut


@dataclass(eq=False, slots=True)
class Session:
    connection: ServerConnection
    app_key: str | None = None
    registrations: Registrations = field(default_factory=Registrations)


class WsServer:
    """Serves sessions on ``host:port`` (port 0: any free port; see ``port`` after start)."""

    def __init__(self, state: ExchangeState) -> None:
        self.state = state
        self.pump = FramePump(state.model, state.faults, state.counters)
        self.sessions: set[Session] = set()
        self._bound: dict[str, Session] = {}
        self._server: Server | None = None
        self._pusher: asyncio.Task[None] | None = None
        self._closing = False
        state.registrations = lambda: sum(len(s.registrations.cursors) for s in self.sessions)
        state.live_sessions = lambda: {
            key: len(session.registrations.cursors) for key, session in self._bound.items()
        }

    async def start(self, host: str, port: int) -> int:
        self._server = await serve(
            self._serve,
            host,
            port,
            process_request=self._admit,
            ping_interval=None,
            max_size=2**16,
        )
        self._pusher = asyncio.create_task(self._push_loop(), name="sim-ws-push")
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        """Stop pushing, close every session, stop listening; bounded whatever the clients do."""
        self._closing = True
        if self._pusher is not None:
            self._pusher.cancel()
            # asyncio.wait, not ``await``: a CancelledError here is close()'s own to raise
            await asyncio.wait({self._pusher}, timeout=CLOSE_GRACE_SECONDS)
        if self._server is None:
            return
        self._server.close()
        if await _within(self._server.wait_closed(), CLOSE_GRACE_SECONDS):
            return
        log.warning("simulator cut the WebSocket sessions that did not close in time")
        for connection in [s.connection for s in self.sessions] + [*self._server.connections]:
            connection.transport.abort()
        if not await _within(self._server.wait_closed(), CLOSE_GRACE_SECONDS):
            for task in list(self._server.handler_tasks):  # e.g. still in the opening handshake
                task.cancel()
            await _within(self._server.wait_closed(), CLOSE_GRACE_SECONDS)

    def drop_all(self) -> None:
        """The ``ws_drop`` fault: every session's connection is cut, without a close frame."""
        for session in list(self.sessions):
            session.connection.transport.abort()

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.state.faults.refusing_ws(self.state.real()):
            return connection.respond(503, "WebSocket refused (refuse_ws fault)\n")
        return None

    async def _serve(self, connection: ServerConnection) -> None:
        session = Session(connection)
        self.sessions.add(session)
        self.state.sessions_open += 1
        try:
            async for message in connection:
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                answer, close = self._on_text(session, text)
                if answer is not None:
                    await connection.send(answer)
                if close:
                    await connection.close()
                    break
        except ConnectionClosed:
            pass
        finally:
            self.sessions.discard(session)
            self.state.sessions_open -= 1
            if session.app_key is not None and self._bound.get(session.app_key) is session:
                del self._bound[session.app_key]

    def _on_text(self, session: Session, text: str) -> tuple[str | None, bool]:
        """(reply or None, close the session afterwards)."""
        control = parse_control(text)
        if control is None:
            return self._refuse(session.app_key, "OPSP9999"), False
        if control.is_pingpong:
            return None, False
        tr_id, tr_key = control.tr_id or "(null)", control.tr_key or "(null)"
        owner = self.state.tokens.approval_owner(control.approval_key)
        if owner is None:
            return self._refuse(session.app_key, "OPSP0011", tr_id, tr_key), False
        holder = self._bound.get(owner)
        if holder is not None and holder is not session:
            self.state.counters.rejected("OPSP8996")
            return self._refuse(owner, "OPSP8996"), True
        if session.app_key is None:
            session.app_key = owner
            self._bound[owner] = session
            self.state.keys.session_bound(owner)
        now = self.state.clock.now()
        msg_cd, answer = session.registrations.apply(
            control, self.pump.next_seq(control.tr_key, now)
        )
        self._count_reply(session, msg_cd)
        return answer, False

    def _refuse(
        self, app_key: str | None, msg_cd: str, tr_id: str = "(null)", tr_key: str = "(null)"
    ) -> str:
        """The refusal reply, counted for ``app_key`` (None: a session not yet bound)."""
        self.state.keys.rejected(app_key, msg_cd)
        return reply(msg_cd, tr_id, tr_key)

    def _count_reply(self, session: Session, msg_cd: str) -> None:
        """Count a (un)subscribe answer: totals track OPSP0008, the key every refusal."""
        keys = self.state.keys
        if msg_cd == "OPSP0008":
            self.state.counters.rejected(msg_cd)
        if msg_cd == "OPSP0000" and session.app_key is not None:
            keys.registered(session.app_key, len(session.registrations.cursors))
        elif REPLIES[msg_cd][0] != "0":
            keys.rejected(session.app_key, msg_cd)

    async def _push_loop(self) -> None:
        settings = self.state.settings
        next_ping = self.state.real() + settings.ping_interval_seconds
        while True:
            await asyncio.sleep(settings.push_interval_seconds)
            if self._closing:  # also ends a loop whose cancellation was lost
                return
            try:
                await self._push_once(ping=self.state.real() >= next_ping)
            except Exception:  # a bug here must not silence the exchange for good
                log.exception("simulator push failed")
            if self.state.real() >= next_ping:
                next_ping = self.state.real() + settings.ping_interval_seconds

    async def _push_once(self, *, ping: bool) -> None:
        state = self.state
        now = state.clock.now()
        stalled = state.faults.stalled(state.real())
        for session in list(self.sessions):
            if stalled:
                self.pump.skip(session.registrations, now)
                continue
            texts = self.pump.frames(session.registrations, now)
            if ping:
                texts.append(pingpong(kst(now).strftime("%Y%m%d%H%M%S")))
            for text in texts:
                try:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a
                    # cancellation that lands just as the send ends, and close() then
                    # waited for ever on a push loop that went on
                    async with asyncio.timeout(SLOW_CLIENT_SECONDS):
                        await session.connection.send(text)
                    # a send that fits the buffer does not yield: let the readers and the
                    # REST side in between frames, however many a fast simulation makes
                    await asyncio.sleep(0)
                except ConnectionClosed:
                    break
                except TimeoutError:  # a client that stops reading must not stall the others
                    log.warning("simulator dropped a session that stopped reading")
                    session.connection.transport.abort()
                    break


async def _within(waiting: Awaitable[None], seconds: float) -> bool:
    """Await ``waiting`` for at most ``seconds``; False if it had not finished by then."""
    try:
        async with asyncio.timeout(seconds):
            await waiting
    except TimeoutError:
        return False
    return True
