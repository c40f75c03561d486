#!/usr/bin/env python3
"""The real agent (`brokerguard run`) against a signal server written with
the PyPI `websockets` library (an independent implementation of the
generic JSON WebSocket protocol): auth with the credential file's token,
one subscribe per connection, data (some of it fragmented) fanned out
with consecutive seq, WebSocket keepalive pings both ways, reconnect and
resubscribe after a close 1000 with status.json consistent throughout, a
clean close 1000 on SIGTERM; and a rejected token (auth_failed + close
1008) parks the feed without a reconnect loop until the credential file
is fixed; and the same over wss:// with Python's TLS stack.

Exit status 0 when every check passes; the last line is `N passed, N failed`.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode
from websockets.sync.server import ServerConnection, serve

from harness import (
    REPO, Checks, Child, Fanout, agent_env, agent_section, expect, main_guard, start_agent, wait_until, workdir,
)

TOKEN = "interop-agent-token-91c4"
FEED = "sig"
SUBSCRIBE = {"type": "subscribe", "channel": "signals"}
DATA_EVERY = 0.05
HEARTBEAT_EVERY = 0.25
TLS = REPO / "tests" / "fixtures" / "tls"


@dataclass
class ConnRecord:
    """What the server saw on one connection (written by its handler thread)."""

    index: int
    tokens: list[str] = field(default_factory=list)
    subscribes: list[dict] = field(default_factory=list)
    other_messages: list[str] = field(default_factory=list)
    # Every message sent after auth_ok except heartbeats: what the bot should see, in order.
    sent: list[dict] = field(default_factory=list)
    subscribed_before_auth: bool = False
    polls: int = 0
    close_requested: threading.Event = field(default_factory=threading.Event)
    # The close code the agent sent (or echoed), None while open or without a close frame.
    close_code_from_agent: int | None = None
    close_reason_from_agent: str | None = None
    ended: threading.Event = field(default_factory=threading.Event)
    conn: ServerConnection | None = None


class CountingConnection(ServerConnection):
    """A ServerConnection that counts the WebSocket pings it receives (the
    library answers them itself and does not surface them)."""

    pings_received = 0

    def process_event(self, event) -> None:  # noqa: ANN001 - websockets' Event union
        if getattr(event, "opcode", None) is Opcode.PING:
            self.pings_received += 1
        super().process_event(event)


class SignalServer:
    """The generic JSON WebSocket protocol: `{"type":"auth","token":T}` →
    `{"type":"auth_ok"}` (or auth_failed + close 1008), heartbeats from then
    on, and `subscribe` → `{"type":"subscribed",...}` then data every 50 ms
    (every third one fragmented),
    both held back until `data_enabled` is set (so a bot that connects to
    the fan-out late still sees every message from seq 1)."""

    def __init__(self, tls: ssl.SSLContext | None = None, close_on_poll: bool = False) -> None:
        # close_on_poll: answer every get_signals with a close 1000 (the
        # "closed with 1000 on every send" outage).
        self.close_on_poll = close_on_poll
        self.lock = threading.Lock()
        self.conns: list[ConnRecord] = []
        self.data_enabled = threading.Event()
        self.tls = tls
        self.server = serve(
            self.handle,
            "127.0.0.1",
            0,
            ssl=tls,
            create_connection=CountingConnection,
            ping_interval=None,  # only the agent's keepalive pings, so they can be counted
            close_timeout=5,
        )
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        # The TLS fixture certificate names localhost and 127.0.0.1.
        return f"wss://localhost:{self.port}" if self.tls else f"ws://127.0.0.1:{self.port}"

    def snapshot(self) -> list[ConnRecord]:
        with self.lock:
            return list(self.conns)

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)

    def handle(self, conn: ServerConnection) -> None:
        with self.lock:
            rec = ConnRecord(index=len(self.conns), conn=conn)
            self.conns.append(rec)
        authed = False
        channels: list[str] = []
        acks_due: list[str] = []
        n = 0
        now = time.monotonic()
        next_data = now
        next_heartbeat = now + HEARTBEAT_EVERY
        try:
            while True:
                if rec.close_requested.is_set():
                    conn.close(code=1000, reason="server restart")
                    break
                now = time.monotonic()
                while acks_due and self.data_enabled.is_set():
                    ack = {"type": "subscribed", "channel": acks_due.pop(0)}
                    conn.send(json.dumps(ack))
                    rec.sent.append(ack)
                if authed and channels and self.data_enabled.is_set() and now >= next_data:
                    n += 1
                    msg = {"type": "data", "channel": channels[0], "n": n, "conn": rec.index}
                    text = json.dumps(msg)
                    if n % 3 == 0:
                        # A fragmented message (text frame + continuations): the agent must reassemble it.
                        third = len(text) // 3
                        conn.send([text[:third], text[third : 2 * third], text[2 * third :]])
                    else:
                        conn.send(text)
                    rec.sent.append(msg)
                    next_data = now + DATA_EVERY
                if authed and now >= next_heartbeat:
                    conn.send(json.dumps({"type": "heartbeat"}))
                    next_heartbeat = now + HEARTBEAT_EVERY
                try:
                    raw = conn.recv(timeout=0.01)
                except TimeoutError:
                    continue
                msg = json.loads(raw)
                kind = msg.get("type")
                if kind == "auth":
                    rec.tokens.append(msg.get("token"))
                    if msg.get("token") == TOKEN:
                        authed = True
                        conn.send(json.dumps({"type": "auth_ok"}))
                    else:
                        conn.send(json.dumps({"type": "auth_failed", "reason": "invalid token"}))
                        conn.close(code=1008, reason="invalid token")
                        break
                elif kind == "subscribe":
                    rec.subscribed_before_auth |= not authed
                    rec.subscribes.append(msg)
                    channels.append(msg.get("channel"))
                    # Acked (and so fanned out) only once the bot listens, like the data.
                    acks_due.append(msg.get("channel"))
                elif kind == "get_signals" and authed:
                    rec.polls += 1
                    if self.close_on_poll:
                        conn.close(code=1000, reason="")
                        break
                    conn.send(json.dumps({"type": "signals", "n": rec.polls}))
                else:
                    rec.other_messages.append(raw)
        except ConnectionClosed:
            pass
        finally:
            rcvd = conn.protocol.close_rcvd
            if rcvd is not None:
                rec.close_code_from_agent = rcvd.code
                rec.close_reason_from_agent = rcvd.reason
            rec.ended.set()


class FanoutReader(Fanout):
    """A bot on `<runtime>/feeds.sock` subscribed to the feed."""

    def __init__(self, path: Path, deadline_s: float) -> None:
        super().__init__(path, deadline_s, [FEED])

    def data(self) -> list[dict]:
        return self.of(FEED, "seq")

    def events(self, name: str) -> list[dict]:
        return [v for v in self.of(FEED, "event") if v["event"] == name]


def write_credentials(work: Path, token: str) -> None:
    """Replaces credentials.env atomically, as `set-credential` or an operator's script would."""
    tmp = work / "credentials.env.tmp"
    tmp.write_text(f"SIG_TOKEN={token}\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, work / "credentials.env")


def write_config(
    work: Path, url: str, token: str = TOKEN, auth_error: bool = True, extra: str = "", preflight: str | None = None
) -> Path:
    """preflight None keeps the product default ("warn": the feed's own
    first connection is the preflight, no extra session); "off" skips the
    preflight report altogether."""
    write_credentials(work, token)
    auth_error_line = 'auth_error = "auth_failed"\n' if auth_error else ""
    preflight_line = f'preflight = "{preflight}"\n' if preflight else ""
    cfg = work / "brokerguard.toml"
    cfg.write_text(
        agent_section(work, work / "credentials.env", 'log_level = "info"\n' + preflight_line)
        + f"""
[[feed]]
name = "{FEED}"
broker = "websocket"
url = "{url}"
auth = '{{"type":"auth","token":"${{SIG_TOKEN}}"}}'
auth_ok = "auth_ok"
{auth_error_line}subscribe = ['{json.dumps(SUBSCRIBE, separators=(",", ":"))}']
ping_every = "1s"
pong_timeout = "2s"
connect_timeout = "1s"
handshake_timeout = "2s"
backoff = {{ initial = "100ms", max = "1s", stable_after = "2s", parked_retry = "10m" }}
{extra}"""
    )
    return cfg


def feed_status(work: Path) -> dict | None:
    try:
        doc = json.loads((work / "run" / "status.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    for f in doc.get("feeds", []):
        if f.get("name") == FEED:
            return f
    return None


def feed_state(work: Path) -> str | None:
    f = feed_status(work)
    return f.get("state") if f else None


class StatusSampler:
    """Reads status.json every 5 ms in a thread and keeps every distinct
    view of the feed, so a check can assert something of every snapshot the
    agent published, not just the last one."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.seen: list[dict] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(0.005):
            f = feed_status(self.work)
            if f is not None and (not self.seen or self.seen[-1] != f):
                self.seen.append(f)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)


def assert_consecutive_seq(lines: list[dict], what: str) -> None:
    seqs = [v["seq"] for v in lines]
    expect(seqs == list(range(1, len(seqs) + 1)), f"{what}: fan-out seq must be 1,2,3,... without gaps, got {seqs}")


def start(work: Path, cfg: Path) -> Child:
    return start_agent(cfg, work / "agent.stderr", env=agent_env())


def main_scenario(checks: Checks) -> None:
    with workdir("bg-interop-agent-") as work:
        server = SignalServer()
        agent: Child | None = None
        bot: FanoutReader | None = None
        sampler = StatusSampler(work)
        failed_before = checks.failed
        try:
            cfg = write_config(work, server.url)
            agent = start(work, cfg)
            log = agent.stderr_text

            def preflight_then_live() -> None:
                state = wait_until(15, lambda: feed_state(work) == "live")
                expect(state, f"the feed never became live (state {feed_state(work)!r}); agent stderr:\n{log()}")
                conns = server.snapshot()
                expect(
                    len(conns) == 1,
                    f"the feed's own first connection is the preflight: expected one connection, the server saw {len(conns)}",
                )
                c = conns[0]
                expect(c.tokens == [TOKEN], f"the server must see the credential file's token once, saw {c.tokens!r}")
                expect(wait_until(5, lambda: c.subscribes), "no subscribe arrived")
                expect(not c.subscribed_before_auth, "the agent subscribed before auth_ok")

            if not checks.run(
                "one connection only (it is the preflight), live with the token from the credential file, "
                "auth before subscribe",
                preflight_then_live,
            ):
                checks.skip_rest(["fan-out", "keepalive", "reconnect", "sigterm"], "the feed never went live")
                return

            def bot_subscribes() -> None:
                nonlocal bot
                bot = FanoutReader(work / "run" / "feeds.sock", 10)

            if not checks.run("feeds.sock confirms a bot's subscription", bot_subscribes):
                checks.skip_rest(["fan-out", "keepalive", "reconnect", "sigterm"], "no fan-out subscription")
                return
            assert bot is not None
            # The subscribe ack and data start only once the bot listens, so it sees seq 1.
            server.data_enabled.set()
            first = server.snapshot()[0]

            def fanout_delivers() -> None:
                got = wait_until(10, lambda: len(bot.data()) >= 6)
                expect(got, f"fewer than 6 data lines on feeds.sock within 10s: {bot.data()!r}; stderr:\n{log()}")
                lines = bot.data()
                assert_consecutive_seq(lines, "first connection")
                sent = list(first.sent)
                expect(
                    [v["data"] for v in lines] == sent[: len(lines)],
                    "the fan-out must carry exactly the server's messages after auth_ok, in order, without "
                    f"heartbeats:\n fan-out {[v['data'] for v in lines]}\n server  {sent[: len(lines)]}",
                )
                for v in lines:
                    expect(isinstance(v.get("ts"), str) and v["ts"].endswith("Z"), f"fan-out ts {v!r}")
                expect(
                    wait_until(5, lambda: "preflight feed=sig passed every layer" in log()),
                    f"no preflight pass in the log once data flowed:\n{log()}",
                )

            def keepalive() -> None:
                conn = first.conn
                assert conn is not None
                # Four pings span more than pong_timeout (2s): if the agent did not
                # recognise the library's pongs it would have reconnected by then.
                pings = wait_until(8, lambda: conn.pings_received >= 4)
                expect(pings, f"the agent sent {conn.pings_received} WebSocket pings in 8s with ping_every = 1s")
                expect(conn.ping(b"server-ping").wait(5), "the agent did not answer the server's WebSocket ping within 5s")
                expect(len(server.snapshot()) == 1, f"the agent reconnected during keepalive; stderr:\n{log()}")
                expect(feed_state(work) == "live", f"the feed left live during keepalive: {feed_status(work)!r}")

            def reconnect_after_close_1000() -> None:
                first.close_requested.set()
                expect(first.ended.wait(10), "the first connection did not end after the server's close 1000")
                expect(
                    first.close_code_from_agent == 1000,
                    f"the agent must answer the server's close 1000 with 1000, sent {first.close_code_from_agent}",
                )
                expect(wait_until(10, lambda: len(server.snapshot()) >= 2), f"the agent did not reconnect; stderr:\n{log()}")
                second = server.snapshot()[1]
                expect(wait_until(10, lambda: second.tokens), "no auth message on the new connection")
                expect(second.tokens == [TOKEN], f"re-auth token on the new connection: {second.tokens!r}")
                expect(wait_until(10, lambda: feed_state(work) == "live" and second.subscribes),
                       f"the feed did not go live again (state {feed_state(work)!r}); stderr:\n{log()}")
                seen = len(bot.data())
                expect(wait_until(10, lambda: len(bot.data()) >= seen + 3), "no data reached the bot after the reconnect")
                expect(bot.events("reconnected"), f"no \"reconnected\" event line on feeds.sock: {bot.lines!r}")
                lines = bot.data()
                assert_consecutive_seq(lines, "across the reconnect")
                after = [v["data"] for v in lines if v["data"].get("conn") == second.index]
                expect(after and after[0]["n"] == 1, f"the new connection's data must start at n=1 in the fan-out: {after[:3]!r}")
                expect(
                    wait_until(5, lambda: (feed_status(work) or {}).get("reconnects", 0) >= 1),
                    f"status.json reconnects should count the reconnect: {feed_status(work)!r}",
                )
                # Every published snapshot must be self-consistent: "live" on the
                # second connection (a later `since`) only with the reconnect counted.
                first_since = next(f["since"] for f in sampler.seen if f["state"] == "live")
                torn = [
                    f for f in sampler.seen
                    if f["state"] == "live" and f["since"] != first_since and f["reconnects"] == 0
                ]
                expect(not torn, f"status.json showed the feed live again with reconnects 0: {torn[0] if torn else None!r}")

            def subscribe_once_per_connection() -> None:
                # Runs after data flowed on both connections, so a repeated subscribe would be here.
                conns = server.snapshot()
                for c in conns:
                    expect(
                        c.subscribes == [SUBSCRIBE],
                        f"connection {c.index} got subscribes {c.subscribes!r}, expected exactly one {SUBSCRIBE!r}",
                    )
                    expect(c.other_messages == [], f"connection {c.index} got unexpected messages {c.other_messages!r}")

            def sigterm_closes_1000() -> None:
                conns = server.snapshot()
                expect(len(conns) == 2, f"expected exactly two connections (feed, reconnect) before SIGTERM, saw {len(conns)}")
                last = conns[-1]
                agent.signal(signal.SIGTERM)
                code = agent.wait_exit(15)
                expect(code == 0, f"the agent must exit 0 on SIGTERM, exit {code}; stderr:\n{log()}")
                expect(last.ended.wait(5), "the server's connection did not end after the agent stopped")
                expect(
                    last.close_code_from_agent == 1000,
                    f"on SIGTERM the agent must close with 1000, the server saw {last.close_code_from_agent} "
                    f"(reason {last.close_reason_from_agent!r}); stderr:\n{log()}",
                )

            def no_secret_leaks() -> None:
                expect(TOKEN not in log(), "the token appears in the agent's log")
                expect(not any(TOKEN in r for r in bot.raw), "the token appears on feeds.sock")

            checks.run("fan-out delivers the server's data with seq 1,2,3...", fanout_delivers)
            checks.run("the server receives keepalive pings and the agent answers pings", keepalive)
            checks.run("server close 1000: reconnect, resubscribe, live again, seq continues", reconnect_after_close_1000)
            checks.run("exactly one subscribe per connection, nothing else sent", subscribe_once_per_connection)
            checks.run("SIGTERM: close 1000 to the server, exit 0", sigterm_closes_1000)
            checks.run("the token never reaches the log or the fan-out", no_secret_leaks)
        finally:
            sampler.stop()
            if bot is not None:
                bot.close()
            if agent is not None:
                agent.stop()
                if checks.failed > failed_before or os.environ.get("INTEROP_VERBOSE"):
                    print(f"--- agent stderr ---\n{agent.stderr_text()}--- end ---", flush=True)
            server.stop()


def rejected_token_scenario(checks: Checks) -> None:
    """A wrong token: the independent server answers auth_failed and closes
    with 1008. The agent must park (no hot reconnect loop that could lock a
    broker key), alert, and come back by itself once the credential file
    holds the right token. No `auth_error` is configured, so the close code
    alone has to be recognised as an auth failure."""
    with workdir("bg-interop-parked-") as work:
        server = SignalServer()
        server.data_enabled.set()
        agent: Child | None = None
        failed_before = checks.failed
        try:
            cfg = write_config(work, server.url, token="stale-token", auth_error=False, preflight="off")
            agent = start(work, cfg)
            log = agent.stderr_text

            def parks_without_hot_loop() -> None:
                parked = wait_until(10, lambda: feed_state(work) == "parked")
                expect(parked, f"close 1008 after auth_failed must park the feed, state {feed_status(work)!r}; stderr:\n{log()}")
                conns = server.snapshot()
                expect(conns and conns[0].tokens == ["stale-token"], f"tokens seen {[c.tokens for c in conns]}")
                expect(conns[0].ended.wait(10), "the rejected connection never ended")
                expect(
                    conns[0].close_code_from_agent == 1008,
                    f"the agent must answer close 1008 with 1008, sent {conns[0].close_code_from_agent}",
                )
                expect("alert=credential_rejected" in log(), f"no credential_rejected alert; stderr:\n{log()}")
                # Two seconds is 20 initial backoffs: a hot loop would show several connections.
                reconnected = wait_until(2, lambda: len(server.snapshot()) > 1)
                expect(not reconnected, f"the agent reconnected {len(server.snapshot()) - 1} time(s) while parked")

            def wakes_on_new_token() -> None:
                write_credentials(work, TOKEN)
                live = wait_until(10, lambda: feed_state(work) == "live")
                expect(live, f"the feed did not go live after the token was fixed: {feed_status(work)!r}; stderr:\n{log()}")
                conns = server.snapshot()
                expect(len(conns) == 2, f"expected exactly one new connection, the server saw {len(conns)} in all")
                expect(conns[1].tokens == [TOKEN], f"the new connection must carry the new token, saw {conns[1].tokens!r}")
                expect(wait_until(5, lambda: conns[1].subscribes == [SUBSCRIBE]), f"subscribes {conns[1].subscribes!r}")

            if checks.run("wrong token: auth_failed + close 1008 parks the feed, no hot loop", parks_without_hot_loop):
                checks.run("parked feed wakes on a fixed credential file and goes live", wakes_on_new_token)
            else:
                checks.skip_rest(["parked feed wakes on a fixed credential file"], "the feed never parked")
            checks.run(
                "SIGTERM exits 0 after a parked episode",
                lambda: expect(agent.stop(15) == 0, f"exit {agent.proc.returncode}; stderr:\n{log()}"),
            )
        finally:
            if agent is not None:
                agent.stop()
                if checks.failed > failed_before or os.environ.get("INTEROP_VERBOSE"):
                    print(f"--- agent stderr ---\n{agent.stderr_text()}--- end ---", flush=True)
            server.stop()


def tls_scenario(checks: Checks) -> None:
    """wss:// to a server using Python's ssl module (OpenSSL via CPython,
    not the agent's native-tls setup): the agent trusts the test CA through
    `tls_ca_file`, goes live, delivers data, and closes with 1000."""
    with workdir("bg-interop-tls-") as work:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(TLS / "server.pem", TLS / "server.key")
        server = SignalServer(tls=ctx)
        server.data_enabled.set()
        agent: Child | None = None
        failed_before = checks.failed
        try:
            cfg = write_config(work, server.url, extra=f'tls_ca_file = "{TLS / "ca.pem"}"\n', preflight="off")
            agent = start(work, cfg)
            log = agent.stderr_text

            def live_over_tls() -> None:
                expect(wait_until(15, lambda: feed_state(work) == "live"),
                       f"the feed never went live over wss:// ({feed_status(work)!r}); stderr:\n{log()}")
                conns = server.snapshot()
                expect(len(conns) == 1 and conns[0].tokens == [TOKEN], f"tokens seen {[c.tokens for c in conns]}")
                expect(wait_until(10, lambda: len(conns[0].sent) >= 4), "no data went out over TLS")
                agent.signal(signal.SIGTERM)
                code = agent.wait_exit(15)
                expect(code == 0, f"exit {code}; stderr:\n{log()}")
                expect(conns[0].ended.wait(5), "the TLS connection did not end")
                expect(conns[0].close_code_from_agent == 1000,
                       f"on SIGTERM over TLS the agent sent close {conns[0].close_code_from_agent}")

            checks.run("wss:// with tls_ca_file: live, data, close 1000 on SIGTERM", live_over_tls)
        finally:
            if agent is not None:
                agent.stop()
                if checks.failed > failed_before or os.environ.get("INTEROP_VERBOSE"):
                    print(f"--- agent stderr ---\n{agent.stderr_text()}--- end ---", flush=True)
            server.stop()


def close_on_send_scenario(checks: Checks) -> None:
    """The outage that motivated the agent: the server closes with 1000 on
    every poll. Each close must take the feed out of live (a state event
    with the close as its error) and into a new connection that
    authenticates and subscribes again; never a feed that stays "live"
    on a dead connection."""
    with workdir("bg-interop-c1000-") as work:
        server = SignalServer(close_on_poll=True)
        server.data_enabled.set()
        agent: Child | None = None
        bot: FanoutReader | None = None
        failed_before = checks.failed
        try:
            cfg = write_config(
                work, server.url, extra='poll = \'{"type":"get_signals"}\'\npoll_every = "300ms"\n', preflight="off"
            )
            agent = start(work, cfg)
            log = agent.stderr_text
            bot = FanoutReader(work / "run" / "feeds.sock", 10)

            def every_close_is_a_reconnect() -> None:
                expect(wait_until(15, lambda: len(server.snapshot()) >= 4),
                       f"expected the agent to keep reconnecting, the server saw {len(server.snapshot())} connection(s); "
                       f"stderr:\n{log()}")
                for c in server.snapshot()[:3]:
                    expect(c.ended.wait(5), f"connection {c.index} did not end")
                    expect(c.tokens == [TOKEN] and c.subscribes == [SUBSCRIBE],
                           f"connection {c.index}: tokens {c.tokens!r}, subscribes {c.subscribes!r}")
                    expect(c.polls == 1, f"connection {c.index} got {c.polls} polls; the first one is closed with 1000")
                    expect(c.close_code_from_agent == 1000, f"connection {c.index}: the agent answered close 1000 with {c.close_code_from_agent}")
                def backoffs_for_close() -> list[dict]:
                    return [
                        e for e in bot.events("state")
                        if e.get("state") == "backoff" and "code 1000" in (e.get("error") or "")
                    ]

                expect(
                    wait_until(5, lambda: len(backoffs_for_close()) >= 3),
                    f"each close 1000 must move the feed to backoff with the close as error; state events: {bot.events('state')!r}",
                )
                last_error = (feed_status(work) or {}).get("last_error") or ""
                expect("code 1000" in last_error, f"status.json last_error should name the close: {last_error!r}")

            checks.run("close 1000 on every poll: every close leaves live and reconnects", every_close_is_a_reconnect)
            checks.run(
                "SIGTERM exits 0 while the server keeps closing",
                lambda: expect(agent.stop(15) == 0, f"exit {agent.proc.returncode}; stderr:\n{log()}"),
            )
        finally:
            if bot is not None:
                bot.close()
            if agent is not None:
                agent.stop()
                if checks.failed > failed_before or os.environ.get("INTEROP_VERBOSE"):
                    print(f"--- agent stderr ---\n{agent.stderr_text()}--- end ---", flush=True)
            server.stop()


def run() -> int:
    checks = Checks("agent_vs_ws_server")
    for scenario in (main_scenario, rejected_token_scenario, close_on_send_scenario, tls_scenario):
        checks.guard(scenario.__name__, lambda: scenario(checks))
    return checks.finish()


if __name__ == "__main__":
    main_guard(run)
