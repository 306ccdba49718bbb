"""The security team's mailbox in ``canary demo``: a local SMTP server that keeps what it gets.

An aiosmtpd server on the loopback interface (port 0: the system picks a
free one) in a thread of the demo process. Every message is written to
``<folder>/NN-alert.eml`` and kept, parsed, for the demo to print.
"""

from __future__ import annotations

import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class _Keeper:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.messages: list[tuple[Path, EmailMessage]] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        with self.arrived:
            path = self.folder / f"{len(self.messages) + 1:02d}-alert.eml"
            path.write_bytes(content)
            self.messages.append((path, message_from_bytes(content, policy=policy.default)))
            self.arrived.notify_all()
        return "250 2.0.0 OK"


class _Controller(Controller):
    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]  # port 0: read back the chosen one
        super()._trigger_server()


class AlertInbox:
    """``start()`` / ``stop()``; ``port``; ``wait_for(n, timeout)``; ``messages``."""

    def __init__(self, folder: Path, host: str = "127.0.0.1") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._keeper = _Keeper(folder)
        self._controller = _Controller(self._keeper, hostname=host, port=0)
        self.host = host

    @property
    def port(self) -> int:
        return int(self._controller.port)

    @property
    def messages(self) -> list[tuple[Path, EmailMessage]]:
        with self._keeper.arrived:
            return list(self._keeper.messages)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def wait_for(self, count: int, timeout: float) -> list[tuple[Path, EmailMessage]]:
        """The messages once ``count`` have arrived, or what came within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._keeper.arrived:
            while len(self._keeper.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._keeper.arrived.wait(left)
            return list(self._keeper.messages)

    def __enter__(self) -> "AlertInbox":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
