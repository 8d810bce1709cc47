#!/usr/bin/env python3
"""A real SMTP server for the integration tests: it accepts every message and keeps it.

    target/tools/smtp-venv/bin/python scripts/smtp-sink.py --port 0 --folder DIR

Listens on 127.0.0.1 (`--port 0` picks a free port), with no TLS and no authentication,
and takes any sender and any recipient. Each message becomes one file in DIR, named
`000001.eml`, `000002.eml`, ... (the count goes on from the files already there, so a sink
started again on the same folder adds to them): two lines for the envelope,
`X-Envelope-From:` and `X-Envelope-To:` (recipients separated by ", "), then the DATA bytes
as received. Each file is written under a temporary name and renamed into place, so that a
reader never sees half a message. Prints `listening on 127.0.0.1:<port>` once it accepts
connections, and stops cleanly on SIGTERM or SIGINT.

aiosmtpd comes from PyPI: `scripts/ensure-tools.sh --test` installs it into
target/tools/smtp-venv.
"""

import argparse
import os
import re
import signal
import sys
import threading

from aiosmtpd.controller import Controller

HOST = "127.0.0.1"
MESSAGE_NAME = re.compile(r"^(\d+)\.eml$")


class Folder:
    """Writes each received message to its own numbered file."""

    def __init__(self, folder):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        numbers = [
            int(match.group(1))
            for match in map(MESSAGE_NAME.match, os.listdir(folder))
            if match
        ]
        self.count = max(numbers, default=0)
        # aiosmtpd calls the handler on its one event-loop thread; the lock only keeps the
        # counter right should that ever change.
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        head = (
            f"X-Envelope-From: {envelope.mail_from}\r\n"
            f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode("utf-8")
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        with self.lock:
            self.count += 1
            name = f"{self.count:06d}.eml"
        partial = os.path.join(self.folder, f".{name}.partial")
        with open(partial, "wb") as file:
            file.write(head + content)
            file.flush()
            os.fsync(file.fileno())
        os.rename(partial, os.path.join(self.folder, name))
        return "250 Message accepted for delivery"


class SinkController(Controller):
    """aiosmtpd's Controller, which can also listen on a port the system picks (0)."""

    def _trigger_server(self):
        # The controller connects to its own port once to check that it answers: with port
        # 0 that must be the port the listener actually got (aiosmtpd 1.4).
        if self.port == 0:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--folder", required=True, help="where messages are written")
    args = parser.parse_args()

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    controller = SinkController(Folder(args.folder), hostname=HOST, port=args.port)
    controller.start()
    print(f"listening on {HOST}:{controller.port}", flush=True)
    try:
        stop.wait()
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
