"""A mail server as its own process, for the end-to-end tests: it accepts every message (after
a pause of up to ``--rcpt-delay`` seconds per recipient, as a busy server takes) and keeps each
one in a spool folder before it answers "250", as a real mail server queues it.

    python -m tests.smtp_sink --port 2525 --spool DIR [--rcpt-delay 0.4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import threading
from pathlib import Path

from aiosmtpd.controller import Controller


class Spool:
    def __init__(self, folder: Path, rcpt_delay: float):
        self.folder, self.rcpt_delay, self.count = folder, rcpt_delay, 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.rcpt_delay:
            await asyncio.sleep(random.uniform(0, self.rcpt_delay))
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.count += 1
        name = f"{os.getpid()}-{self.count:06d}.eml"
        tmp = self.folder / f".{name}.tmp"
        tmp.write_bytes(envelope.original_content)
        tmp.replace(self.folder / name)
        return "250 OK queued"


def received(spool: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(spool.glob("*.eml"))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spool", type=Path, required=True)
    parser.add_argument("--rcpt-delay", type=float, default=0.0)
    args = parser.parse_args()
    args.spool.mkdir(parents=True, exist_ok=True)
    controller = Controller(Spool(args.spool, args.rcpt_delay), hostname="127.0.0.1", port=args.port)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
