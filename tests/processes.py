"""Our commands run as a user runs them: a subprocess, its output collected line by line.

:func:`run` runs one to the end; :class:`Live` keeps one running (the demo
listening, the fake's console) while the test plays its peer, reads what it
prints as it prints it, and stops it with Ctrl+C as a terminal would.
"""

import os
import pathlib
import signal
import subprocess
import sys
import threading
from typing import IO, TypeVar

from conftest import wait_until

L = TypeVar("L", bound="Live")  # what Live (or a subclass) returns from __enter__
ROOT = pathlib.Path(__file__).parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}


def run(*args: str | pathlib.Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python *args`` from the checkout, to the end; its status and output."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        cwd=ROOT,
        check=False,
    )


def as_in_a_terminal() -> None:
    """Run in the child before exec: SIGINT at its default disposition, as in a terminal.

    A shell starts a background job (``pytest &``, nohup, some CI runners) with SIGINT
    ignored, and an ignored signal stays ignored across exec; Python then installs no
    KeyboardInterrupt handler, and the command under test never sees our Ctrl+C (the
    Ctrl+C test timed out so). What we test is a user pressing Ctrl+C in a terminal.
    (As a ``preexec_fn`` it runs between fork and exec; it takes no lock that another
    thread could hold at the fork, so the warning about threads does not apply.)
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Live:
    """``python *args`` in a subprocess until it exits or gets Ctrl+C; threads read its output.

    With ``stdin=True`` its standard input is a pipe the test writes lines to
    (:meth:`send`), as a user types into a console.
    """

    def __init__(self, *args: str, stdin: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if stdin else None,
            text=True, encoding="utf-8", env=ENV, cwd=ROOT,
            preexec_fn=as_in_a_terminal,  # noqa: PLW1509
        )  # fmt: skip
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str], lines: list[str]) -> None:
        for text in stream:
            lines.append(text)

    def wait_for(self, words: str, timeout: float = 15.0) -> str:
        """The first stdout line containing ``words``; fails after ``timeout`` seconds.

        Fails at once, with what it printed, if it exits without printing them.
        """

        def line() -> str | None:
            found = next((text for text in list(self.out) if words in text), None)
            if found is None and self.proc.poll() is not None:
                for reader in self.readers:  # what it printed last may still be on its way
                    reader.join(5)
                found = next((text for text in list(self.out) if words in text), None)
                if found is None:
                    raise AssertionError(f"it exited with status {self.proc.returncode}")
            return found

        try:
            found: str = wait_until(line, timeout, f"{words!r} printed")
            return found
        except AssertionError as exc:
            raise AssertionError(f"{exc}; no {words!r} in: {self.output()}") from None

    def output(self) -> str:
        return f"\n{''.join(self.out)}\n{''.join(self.err)}"

    def send(self, line: str) -> None:
        """One line on its standard input (``stdin=True``)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 15.0) -> tuple[int, str, str]:
        """Wait for it to exit by itself; the status and everything it printed."""
        code = self.proc.wait(timeout)
        for reader in self.readers:
            reader.join(5)
        return code, "".join(self.out), "".join(self.err)

    def stop(self) -> tuple[int, str, str]:
        """Ctrl+C; the exit status and everything it printed."""
        self.proc.send_signal(signal.SIGINT)
        return self.finish(10)

    def __enter__(self: L) -> L:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
