"""A real SMTP server on loopback for the tests (aiosmtpd), recording what it accepts."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes = b""  # the message's bytes as the server received them
    mail_options: list[str] = field(default_factory=list)  # e.g. BODY=8BITMIME


@dataclass
class Recorder:
    """The handler: keeps each accepted message; refuses the next ``refuse`` DATA commands with
    a 4xx (come back later); accepts only ``user``/``password`` when AUTH is used."""
    user: str = ""
    password: str = ""
    refuse: int = 0
    rcpt_delay: float = 0.0  # seconds the server takes to accept a recipient (a slow server)
    received: list[Received] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.rcpt_delay:
            import asyncio

            await asyncio.sleep(self.rcpt_delay)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        if self.refuse > 0:
            self.refuse -= 1
            return "451 4.3.0 Mailbox busy, try again later"
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message,
                                      envelope.original_content, list(envelope.mail_options)))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            self.logins.append((user, password))
            return AuthResult(success=(user, password) == (self.user, self.password))
        return AuthResult(success=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(recorder: Recorder, port: int | None = None) -> Controller:
    controller = Controller(recorder, hostname="127.0.0.1", port=port or free_port(), authenticator=recorder.authenticate,
                            auth_require_tls=False, auth_required=bool(recorder.user))
    controller.start()
    return controller
