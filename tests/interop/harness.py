"""Shared helpers for the interop checks: named checks with a pass/fail
tally, waiting on a condition with a deadline, finding the brokerguard
binary, starting/stopping child processes so that none outlives a run
(`brokerguard sim …` once it listens, `brokerguard run` with a clean
environment), the agent's `[agent]` config section, a bot on the agent's
fan-out socket, and the WebSocket client steps several suites take.

The checks in this folder hold brokerguard against independent
implementations of the protocols it speaks (the PyPI `websockets` library
for the generic JSON WebSocket protocol, `ib_async` for the TWS API), not
against our own simulators alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

REPO = Path(__file__).resolve().parents[2]

T = TypeVar("T")


class CheckFailed(AssertionError):
    """A check's expectation did not hold; the message says what and why."""


def expect(cond: object, message: str) -> None:
    """Fails the current check with `message` unless `cond` is true."""
    if not cond:
        raise CheckFailed(message)


def wait_until(deadline_s: float, cond: Callable[[], T | None], poll_s: float = 0.02) -> T | None:
    """Polls `cond` until it returns something truthy or the deadline passes;
    returns that value, or None on timeout."""
    end = time.monotonic() + deadline_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= end:
            return None
        time.sleep(poll_s)


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temporary directory for one run's configs, sockets and logs, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def binary() -> Path:
    """The brokerguard binary: $BROKERGUARD_BIN, else target/debug/brokerguard."""
    path = Path(os.environ.get("BROKERGUARD_BIN", REPO / "target" / "debug" / "brokerguard"))
    if not path.is_file():
        raise SystemExit(f"{path} does not exist: run `cargo build` first (or set BROKERGUARD_BIN)")
    return path


class Checks:
    """Runs named checks, prints one line each, and a `N passed, N failed` tally."""

    def __init__(self, suite: str) -> None:
        self.suite = suite
        self.passed = 0
        self.failed = 0

    def run(self, name: str, fn: Callable[[], None]) -> bool:
        start = time.monotonic()
        try:
            fn()
        except CheckFailed as e:
            self.failed += 1
            print(f"FAIL {self.suite}: {name}: {e}", flush=True)
            return False
        except Exception:  # noqa: BLE001 - any crash of a check is a failure, with its trace
            self.failed += 1
            print(f"FAIL {self.suite}: {name}: unexpected error\n{traceback.format_exc()}", flush=True)
            return False
        self.passed += 1
        print(f"ok   {self.suite}: {name} ({time.monotonic() - start:.2f}s)", flush=True)
        return True

    def guard(self, name: str, fn: Callable[[], None]) -> None:
        """Runs a scenario that holds checks of its own: a crash outside
        those (its setup or teardown) counts as one failed check."""
        try:
            fn()
        except Exception:  # noqa: BLE001
            self.failed += 1
            print(f"FAIL {self.suite}: {name}: setup or teardown failed\n{traceback.format_exc()}", flush=True)

    def skip_rest(self, names: list[str], why: str) -> None:
        """Counts checks that could not run because an earlier step failed."""
        for name in names:
            self.failed += 1
            print(f"FAIL {self.suite}: {name}: not run ({why})", flush=True)

    def finish(self) -> int:
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 0 if self.failed == 0 else 1


class Child:
    """A child process whose stdout lines are collected by a reader thread.

    stderr goes to `stderr_path` (or is merged into stdout). `stop()` sends
    SIGTERM, waits with a deadline, and kills on timeout; it is safe to call
    twice, and every script calls it in a `finally`.
    """

    def __init__(self, argv: list[str], stderr_path: Path | None = None, env: dict[str, str] | None = None):
        self._stderr_file = open(stderr_path, "wb") if stderr_path else None  # noqa: SIM115
        self.stderr_path = stderr_path
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file if self._stderr_file else subprocess.STDOUT,
            env=env,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.all_lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.all_lines.append(line)
            self.lines.put(line)

    def wait_line(self, deadline_s: float, pred: Callable[[str], bool]) -> str | None:
        """The next stdout line matching `pred`, or None if none came in time."""
        end = time.monotonic() + deadline_s
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.lines.get(timeout=min(left, 0.2))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    return None
                continue
            if pred(line):
                return line

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, deadline_s: float) -> int | None:
        """The exit code, or None if it did not exit in time (it is then killed)."""
        try:
            return self.proc.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return None

    def stop(self, deadline_s: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            code = self.wait_exit(deadline_s)
        else:
            code = self.proc.returncode
        self._reader.join(timeout=2)
        if self._stderr_file:
            self._stderr_file.close()
            self._stderr_file = None
        return code

    def stderr_text(self) -> str:
        if self.stderr_path and self.stderr_path.exists():
            return self.stderr_path.read_text(errors="replace")
        return "\n".join(self.all_lines)


class SimProcess:
    """`brokerguard sim ARGS…` in a child process, returned once it printed
    the line `listening` (a regex, matched at the line's start) says it
    listens; `match` holds that match, for the URLs or port it names."""

    def __init__(self, args: list[str], stderr_path: Path, listening: str) -> None:
        argv = [str(binary()), "sim", *args]
        self.child = Child(argv, stderr_path=stderr_path)
        rx = re.compile(listening)
        line = self.child.wait_line(15, lambda l: rx.match(l) is not None)
        if line is None:
            self.child.stop()
            raise RuntimeError(
                f"`{' '.join(argv)}` never said it was listening; stdout {self.child.all_lines!r}, "
                f"stderr {self.child.stderr_text()!r}"
            )
        match = rx.match(line)
        assert match is not None
        self.match = match

    def saw(self, pattern: str, deadline_s: float = 5.0) -> bool:
        """Whether the simulator printed a line matching `pattern` (regex) in time."""
        rx = re.compile(pattern)
        return bool(wait_until(deadline_s, lambda: any(rx.search(l) for l in self.child.all_lines)))

    def events(self) -> str:
        """Everything the simulator printed so far."""
        return "\n".join(self.child.all_lines)

    def stop(self) -> int | None:
        return self.child.stop()


# Variables the agent would act on if it inherited them from the test run
# (a service manager's, a logging override, another config).
_AGENT_ENV_DROPPED = ("NOTIFY_SOCKET", "JOURNAL_STREAM", "WATCHDOG_USEC", "RUST_LOG",
                      "CREDENTIALS_DIRECTORY", "BROKERGUARD_CONFIG")


def agent_env() -> dict[str, str]:
    """This process's environment without what would change the agent's behaviour."""
    return {k: v for k, v in os.environ.items() if k not in _AGENT_ENV_DROPPED}


def start_agent(config: Path, stderr_path: Path, env: dict[str, str] | None = None) -> Child:
    """`brokerguard run --config CONFIG`; `env` None: this process's environment."""
    return Child([str(binary()), "run", "--config", str(config)], stderr_path=stderr_path, env=env)


def agent_section(work: Path, credentials: Path, extra: str = "") -> str:
    """A config's `[agent]` section: runtime and state directories under
    `work`, `credentials` as the one credential file, then `extra` lines."""
    return (
        f'[agent]\nruntime_dir = "{work}/run"\nstate_dir = "{work}/state"\n'
        f'credential_files = ["{credentials}"]\n{extra}'
    )


def connect_unix(path: Path, deadline_s: float) -> socket.socket:
    """A connection to the Unix socket at `path`, retried until it is
    accepted (the agent creates the socket some time after it starts)."""

    def attempt() -> socket.socket | None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(str(path))
            return s
        except OSError:
            s.close()
            return None

    sock = wait_until(deadline_s, attempt, poll_s=0.05)
    if sock is None:
        raise RuntimeError(f"the fan-out socket {path} never accepted a connection")
    return sock


class Fanout:
    """A bot on the agent's fan-out socket (`<runtime>/feeds.sock`): it
    connects within `deadline_s`, subscribes to `feeds` if given and waits
    for the agent's `{"subscribed": [...]}` confirmation (a connect alone
    does not say the agent has registered the subscriber yet), and a reader
    thread collects every line, parsed with `loads`, and its raw text."""

    def __init__(
        self,
        path: Path,
        deadline_s: float,
        feeds: list[str] | None = None,
        loads: Callable[[str], Any] = json.loads,
    ) -> None:
        self.sock = connect_unix(path, deadline_s)
        self._loads = loads
        self.lock = threading.Lock()
        self.lines: list[dict] = []
        self.raw: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        if feeds is not None:
            self.sock.sendall(json.dumps({"subscribe": feeds}).encode() + b"\n")
            confirmed = self.wait(lambda v: sorted(v.get("subscribed") or [None]) == sorted(feeds), deadline_s)
            if confirmed is None:
                raise RuntimeError(f"feeds.sock never confirmed the subscription to {feeds}; lines: {self.snapshot()!r}")

    def _read(self) -> None:
        with self.sock.makefile("r", encoding="utf-8") as f:
            for line in f:
                value = self._loads(line)
                with self.lock:
                    self.raw.append(line)
                    self.lines.append(value)

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.lines)

    def of(self, feed: str, key: str) -> list[dict]:
        """The lines of `feed` that carry `key` ("data", "seq", "event", ...)."""
        return [v for v in self.snapshot() if v.get("feed") == feed and key in v]

    def wait(self, pred: Callable[[dict], object], deadline_s: float) -> dict | None:
        """The first line (from the first one on) for which `pred` holds, or None in time."""
        end = time.monotonic() + deadline_s
        seen = 0
        while True:
            lines = self.snapshot()
            for line in lines[seen:]:
                if pred(line):
                    return line
            seen = len(lines)
            if time.monotonic() >= end:
                return None
            time.sleep(0.02)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=5)


def recv_text(ws: Any, what: str, timeout_s: float) -> str:
    """The next message on a `websockets` connection, which must be text."""
    try:
        raw = ws.recv(timeout=timeout_s)
    except TimeoutError:
        raise CheckFailed(f"no message within {timeout_s}s while waiting for {what}") from None
    expect(isinstance(raw, str), f"{what}: expected a text frame, got {type(raw).__name__} {raw!r}")
    return raw


def expect_http_refusal(status: int, connect: Callable[[], Any]) -> None:
    """`connect()` (a `websockets` client connect) must be refused at the
    WebSocket upgrade with HTTP `status`."""
    from websockets.exceptions import InvalidStatus

    try:
        ws = connect()
    except InvalidStatus as e:
        got = e.response.status_code
        expect(got == status, f"the upgrade must be refused with {status}, got {got}")
        return
    ws.close()
    raise CheckFailed(f"the WebSocket upgrade succeeded; expected it refused with HTTP {status}")


def main_guard(run: Callable[[], int]) -> None:
    """Runs a suite and exits with its status; a crash outside the checks is a failure."""
    try:
        code = run()
    except SystemExit:
        raise
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        print("0 passed, 1 failed", flush=True)
        code = 1
    sys.exit(code)
