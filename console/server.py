"""The console's ASGI server (starlette): the page, its static files and one websocket per page.

One *pump* task per server (``console.pump``) takes the newest frame from the source's one-slot
buffer, computes its statistics and encodes it once (in a worker thread), then every page's sender
sends it; a run being watched is *paced* (one batch of updates per tick). Flow
control is per page: a page acknowledges each frame once drawn, and at most ``MAX_IN_FLIGHT`` frames
may be unacknowledged, so a slow page (a slow link, a background tab) gets fewer, fresher frames
instead of a growing queue: the latency stays bounded. Frames nobody is watching are never encoded.

Messages to the page: binary images (``console.encoding``; JPEG unless the page asks otherwise,
``/ws?encoding=raw`` or an ``encoding`` command), then JSON text: ``hello`` (on connect), ``stats``
(after each frame), ``status`` (when it changes), ``stability`` (a run's new reference
correlations, each sent once), ``ok`` / ``error`` (answers to commands).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import json
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path

from console.commands import ENCODINGS, SERVER_COMMANDS, parse_command
from console.pump import MAX_IN_FLIGHT, Pump
from console.source import CommandError, Source
from speckle_core.errors import UserError

log = logging.getLogger("speckle_lab.console")

STATIC = Path(__file__).resolve().parent / "static"
# A frame not acknowledged after this is taken as lost (a page whose script failed). Long: a page
# that is merely slow (a loaded machine, a slow link) must not be sent frames faster than it draws.
ACK_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 60.0
STOP_WAIT_S = 2.0  # a page's tasks get this long to end once its socket closed


class Page:
    """One connected page: its sender (frames, status) and receiver (commands, acks)."""

    def __init__(self, ws, pump: Pump, source: Source):
        self.ws, self.pump, self.source = ws, pump, source
        self.encoding = "jpeg"  # what the page asks for first (static/index.html), until it says
        self.in_flight: dict[int, float] = {}  # seq → time sent
        self.sent_frame = self.sent_status = self.sent_slm = -1
        self.sent_points = 0  # points of the stability series sent
        self.closed = False
        self.visible = True  # a hidden tab (the page says so) is sent status, never frames
        self.send_lock = asyncio.Lock()
        self.latency_ms: float | None = None

    async def send_json(self, obj: dict) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(obj, default=str))

    def room(self) -> bool:
        """Whether this page may be sent another frame (frames unacknowledged for ACK_TIMEOUT_S
        are taken as lost). Never while the page is hidden."""
        if not self.visible:
            return False
        now = time.monotonic()
        if any(now - t >= ACK_TIMEOUT_S for t in self.in_flight.values()):
            self.in_flight = {s: t for s, t in self.in_flight.items() if now - t < ACK_TIMEOUT_S}
        return len(self.in_flight) < MAX_IN_FLIGHT

    def _due(self) -> bool:
        p = self.pump
        room = self.room()
        frame_due = p.frame is not None and p.frame.seq > self.sent_frame and room
        return (frame_due
                or (p.status is not None and p.status[0] != self.sent_status)
                or (p.slm is not None and p.slm[0] != self.sent_slm)
                or p.stability_total > self.sent_points)

    async def sender(self) -> None:
        p = self.pump
        while not self.closed:
            async with p.changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(p.changed.wait_for(self._due), 0.5)
            await self._send_due()

    async def _send_due(self) -> None:
        """The frame first (the page decodes it while the rest arrives, and draws all at once)."""
        p = self.pump
        await self._send_frame()
        if p.status is not None and p.status[0] != self.sent_status:
            self.sent_status = p.status[0]
            async with self.send_lock:
                await self.ws.send_text(p.status[1])
        if p.slm is not None and p.slm[0] != self.sent_slm:
            self.sent_slm = p.slm[0]
            async with self.send_lock:
                await self.ws.send_bytes(p.slm[1])
        if p.stability_total > self.sent_points:
            await self._send_points()

    async def _send_frame(self) -> None:
        frame = self.pump.frame
        if frame is not None and frame.seq > self.sent_frame and self.room():
            self.sent_frame = frame.seq
            msg = frame.encoded.get(self.encoding)
            if msg is None:
                msg = await asyncio.to_thread(frame.message, self.encoding)
            self.in_flight[frame.seq] = time.monotonic()
            async with self.send_lock:
                await self.ws.send_bytes(msg)
                await self.ws.send_text(frame.stats_text)

    async def _send_points(self) -> None:
        """The stability points this page has not been sent yet (the series only grows: a page
        gets each point once, not the whole series with every status)."""
        start, points = self.source.stability_since(self.sent_points)  # type: ignore[attr-defined]
        self.sent_points = start + len(points)
        if points:
            await self.send_json({"type": "stability", "start": start, "points": points})

    async def receiver(self) -> None:
        while True:
            msg = await self.ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            await self.handle(msg.get("text"))

    async def handle(self, text: str | None) -> None:
        try:
            cmd = parse_command(text)
            if cmd["cmd"] in SERVER_COMMANDS:
                self._server_command(cmd)
                return
            if self.source.readonly:
                raise CommandError("read-only: this page watches an acquisition run; nothing can be changed")
            result = await asyncio.wait_for(asyncio.to_thread(self.source.command, cmd), COMMAND_TIMEOUT_S)
            await self.send_json({"type": "ok", "cmd": cmd["cmd"], **(result or {})})
        except CommandError as e:
            await self.send_json({"type": "error", "message": str(e)})
        except TimeoutError:
            await self.send_json({"type": "error", "message": "the rig did not answer in time"})

    def _server_command(self, cmd: dict) -> None:
        if cmd["cmd"] == "ack":
            self.in_flight.pop(cmd["seq"], None)
            if "latency_ms" in cmd:
                self.latency_ms = cmd["latency_ms"]
        elif cmd["cmd"] == "visible":
            self.visible = cmd["visible"]
        else:
            self.encoding = cmd["encoding"]
        # a freed slot (or a page shown again) may let the next frame go: wake the senders
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self.pump.changed:
            self.pump.changed.notify_all()


def build_app(source: Source, max_fps: float | None = None, title: str = "speckle-lab console",
              display_px: int | None = None, paced: bool = False):
    """The ASGI app serving ``source`` (a live rig or a run being acquired). ``max_fps``: frames
    sent at most this often; ``display_px``: frames binned down to at most this many pixels a side
    for display; ``paced``: frames, status and pattern go out together once per ``1 / max_fps``
    seconds (a run being watched: ``console.pump``)."""
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.staticfiles import StaticFiles
    from starlette.websockets import WebSocketDisconnect

    state: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        pump = Pump(source, max_fps, display_px=display_px, paced=paced)
        state["pump"] = pump
        task = asyncio.create_task(pump.run())
        try:
            yield
        finally:
            await pump.stop(task)

    async def index(request):
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def status(request):
        return JSONResponse(json.loads(json.dumps(source.status(), default=str)))

    async def websocket(ws):
        await ws.accept()
        pump: Pump = state["pump"]
        page = Page(ws, pump, source)
        if ws.query_params.get("encoding") in ENCODINGS:  # /ws?encoding=raw: from the first frame on
            page.encoding = ws.query_params["encoding"]
        pump.add(page)
        source.clients_changed(pump.clients)
        tasks = []
        try:
            await page.send_json({"type": "hello", "readonly": source.readonly, "title": title})
            tasks = [asyncio.create_task(page.sender()), asyncio.create_task(page.receiver())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            page.closed = True
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=STOP_WAIT_S)
            pump.discard(page)
            source.clients_changed(pump.clients)

    routes = [Route("/", index), Route("/status", status), WebSocketRoute("/ws", websocket),
              Mount("/static", StaticFiles(directory=STATIC))]
    return Starlette(routes=routes, lifespan=lifespan)


# -- serving ---------------------------------------------------------------------------------------------

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def host_warning(host: str) -> str | None:
    if host in LOCAL_HOSTS:
        return None
    return (f"warning: serving on {host}: anyone who can reach this machine on that network can "
            "open the page and drive the rig; bind 127.0.0.1 and use an SSH port forward instead")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a one-line UserError (port in use, bad address, no permission)."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port}: must be 0..65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UserError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(64)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"--port {port}: already in use on {host}; choose another port") from None
        raise UserError(f"--host {host} --port {port}: cannot listen there ({e.strerror})") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def make_server(app, sock: socket.socket):
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", ws="websockets-sansio", lifespan="on",
                            ws_max_size=1 << 16, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    return server


def serve(app, sock: socket.socket) -> None:
    """Serves in this thread until Ctrl-C."""
    import asyncio as _asyncio

    server = make_server(app, sock)
    _asyncio.run(server.serve(sockets=[sock]))


def lower_priority(nice: int) -> None:
    """Lowers the calling thread's CPU priority by ``nice`` (Linux schedules threads one by one), so
    that under contention the acquisition's threads come first. Elsewhere: nothing."""
    if nice and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            base = os.getpriority(os.PRIO_PROCESS, 0)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), base + nice)


class ServerThread:
    """Serves ``app`` on ``sock`` from a daemon thread. Whatever happens in it (an exception, a
    crash of the event loop) stays in it: logged, never raised into the caller. ``nice`` lowers the
    priority of the server's threads (its event loop and its worker threads) below the caller's."""

    def __init__(self, app, sock: socket.socket, nice: int = 0):
        self.sock = sock
        self.nice = nice
        self.server = make_server(app, sock)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="console-server", daemon=True)

    async def _serve(self) -> None:
        lower_priority(self.nice)
        workers = concurrent.futures.ThreadPoolExecutor(4, "console-worker", lower_priority, (self.nice,))
        asyncio.get_running_loop().set_default_executor(workers)
        await self.server.serve(sockets=[self.sock])

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:  # noqa: BLE001 - the view must never take the run down
            self.error = e
            log.warning("view server stopped: %s: %s (the run goes on)", type(e).__name__, e)

    def start(self) -> ServerThread:
        self.thread.start()
        return self

    def stop(self, timeout_s: float = 3.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)
        with contextlib.suppress(OSError):
            self.sock.close()
