"""Processes for the Python tests and benchmarks: a free port, waiting for a
condition, and starting and stopping a process, whether this Python process
started it or only knows its pid (a role the demo started, from its
stack.json)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_running(pid: int) -> bool:
    """Whether `pid` runs; a zombie (exited, not yet reaped by its parent)
    does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _tail(log: Path | None) -> str:
    if log is None or not log.is_file():
        return ""
    return log.read_text(errors="replace")[-3000:]


def wait_until(
    what: str,
    check: Callable[[], T],
    timeout: float = 30.0,
    proc: "subprocess.Popen | Proc | None" = None,
    log: Path | None = None,
    interval: float = 0.05,
) -> T:
    """Polls `check` until it returns something true and returns that. An
    exception from `check` means "not yet". Fails early when `proc` exits,
    and on timeout, with the end of `log`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.poll()}\n{_tail(log)}")
        try:
            result = check()
            if result:
                return result
        except Exception as e:  # noqa: BLE001 - any failure means "not yet"
            last = e
        time.sleep(interval)
    raise RuntimeError(f"{what}: not ready after {timeout}s (last error: {last})\n{_tail(log)}")


@dataclass
class Proc:
    """A process and its log. Either started here (`start`, which keeps the
    Popen and so its exit status) or adopted by pid, when another process
    (the demo) started it and is its parent."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen | None = None
    adopted_pid: int | None = None

    def start(self) -> "Proc":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                [str(a) for a in self.argv], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
            )
        self.adopted_pid = None
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else self.adopted_pid

    def poll(self) -> int | str | None:
        """None while it runs; then its exit status, or "exited" when its
        parent is another process."""
        if self.popen is not None:
            return self.popen.poll()
        if self.adopted_pid is None or not pid_running(self.adopted_pid):
            return "exited"
        return None

    def running(self) -> bool:
        return self.poll() is None

    def _signal(self, sig: signal.Signals) -> None:
        if self.popen is not None:
            self.popen.send_signal(sig)
        elif self.adopted_pid is not None:
            try:
                os.kill(self.adopted_pid, sig)
            except ProcessLookupError:
                pass

    def _wait(self, timeout: float) -> bool:
        if self.popen is not None:
            try:
                self.popen.wait(timeout=timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, and SIGKILL if it has not exited within `timeout`."""
        if not self.running():
            return
        self._signal(signal.SIGTERM)
        if not self._wait(timeout):
            self.kill()

    def kill(self) -> None:
        if not self.running():
            return
        self._signal(signal.SIGKILL)
        self._wait(10)
