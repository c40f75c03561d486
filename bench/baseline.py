"""The Python stack brokerguard is measured against.

What trading bots run today: one asyncio process, the PyPI `websockets`
client, one task per feed with a reconnect loop (immediate first retry, then
exponential backoff with jitter, reset once a connection has lasted
`--stable-after`), a keepalive ping, and a stall timeout on every receive.
It speaks the simulator's protocol (auth, subscribe, data, heartbeats) and
prints what a bot would consume on stdout, one JSON object per line, in
the agent's fan-out format: data lines `{"feed","seq","ts","data"}` and
`{"feed","event":"state","state":...}` on every change, so a benchmark
reads both programs the same way.

The token is re-read from `--token-file` (NAME=value lines) before every
connection; there is no file watch (the stack it stands for needed a
restart to pick up a new day token).

Usage: baseline.py --url ws://127.0.0.1:PORT/ --token-file F --token-name N
                   --feeds f0,f1,... [--stall-after 30] [--ping-every 15]
                   [--pong-timeout 10] [--handshake-timeout 10]
                   [--backoff-initial 0.5] [--backoff-max 30]
                   [--stable-after 30]
"""

import argparse
import asyncio
import datetime
import json
import random
import signal
import sys
import time

import websockets


def now_ts():
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def read_token(path, name):
    with open(path) as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            if key == name:
                return value
    raise KeyError(name)


class Rejected(Exception):
    """The server refused the token: retry only after the backoff's maximum."""


async def feed(name, args):
    seq = 0
    failures = 0
    state = None

    def set_state(new, error=None, **extra):
        nonlocal state
        if new != state:
            state = new
            line = {"feed": name, "event": "state", "state": new}
            if error:
                line["error"] = error
            line.update(extra)
            emit(line)

    while True:
        set_state("connecting")
        live_at = None
        error = None
        try:
            token = read_token(args.token_file, args.token_name)
            async with websockets.connect(
                args.url,
                open_timeout=args.handshake_timeout,
                ping_interval=args.ping_every,
                ping_timeout=args.pong_timeout,
                close_timeout=5,
                max_size=16 << 20,
                compression=None,
            ) as ws:
                await ws.send(json.dumps({"type": "auth", "token": token}))
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow
                # a cancellation that lands as the message arrives, and the
                # task then never stops.
                async with asyncio.timeout(args.handshake_timeout):
                    reply = await ws.recv()
                if "auth_ok" not in reply:
                    raise Rejected("auth refused")
                await ws.send(json.dumps({"type": "subscribe", "channel": "signals"}))
                set_state("live")
                live_at = time.monotonic()
                while True:
                    async with asyncio.timeout(args.stall_after):
                        text = await ws.recv()
                    msg = json.loads(text)
                    kind = msg.get("type")
                    if kind in ("heartbeat", "subscribed"):
                        continue
                    seq += 1
                    emit({"feed": name, "seq": seq, "ts": now_ts(), "data": msg})
        except asyncio.CancelledError:
            raise
        except asyncio.TimeoutError:
            error = "stalled"
        except Exception as e:  # every failure ends the connection alike
            error = f"{type(e).__name__}: {e}"
        if error is None:
            error = "closed"
        if live_at is not None and time.monotonic() - live_at >= args.stable_after:
            failures = 0
        # The agent's schedule, so that a comparison is about the
        # implementations: first retry immediate, then exponential steps
        # with "equal jitter" (half fixed, half random), capped.
        if error.startswith("Rejected"):
            delay = args.backoff_max
        elif failures == 0:
            delay = 0.0
        else:
            step = min(args.backoff_initial * 2 ** (failures - 1), args.backoff_max)
            delay = step / 2 + random.uniform(0, step / 2)
        failures += 1
        set_state("backoff", error, retry_in_ms=int(delay * 1000), failures=failures)
        await asyncio.sleep(delay)


async def main(args):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(feed(n, args)) for n in args.feeds.split(",") if n]
    await stop.wait()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--token-file", required=True)
    p.add_argument("--token-name", required=True)
    p.add_argument("--feeds", required=True)
    p.add_argument("--stall-after", type=float, default=30.0)
    p.add_argument("--ping-every", type=float, default=15.0)
    p.add_argument("--pong-timeout", type=float, default=10.0)
    p.add_argument("--handshake-timeout", type=float, default=10.0)
    p.add_argument("--backoff-initial", type=float, default=0.5)
    p.add_argument("--backoff-max", type=float, default=30.0)
    p.add_argument("--stable-after", type=float, default=30.0)
    asyncio.run(main(p.parse_args()))
