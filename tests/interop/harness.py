"""Shared helpers for the interop checks: named checks with a pass/fail
tally, waiting on a condition with a deadline, finding the brokerguard
binary, and starting/stopping child processes so that none outlives a run.

The checks in this folder hold brokerguard against independent
implementations of the protocols it speaks (the PyPI `websockets` library
for the generic JSON WebSocket protocol, `ib_async` for the TWS API), not
against our own simulators alone.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Callable, TypeVar

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
