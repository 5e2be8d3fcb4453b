#!/usr/bin/env python3
"""A real SMTP server for winback's integration tests, on aiosmtpd.

Usage:
    python3 smtp_server.py --port-file F --maildir DIR [--rules RULES.json] [--exit-on-stdin-eof]

Listens on 127.0.0.1 only, on a port the kernel picks (port 0), and writes that port
to F (atomically: write a temporary file, then rename) once it is listening.

Every accepted message is saved as DIR/NNNNNN.eml (a sequence number from 000001,
written atomically), then one JSON line is appended to DIR/log.jsonl:
    {"seq": 1, "mail_from": "...", "rcpt_tos": ["..."], "peer": "127.0.0.1:PORT", "size": 1234}
The .eml file exists before its log line does, so a reader of the log can open it.

RULES.json is re-read at the start of every transaction (MAIL FROM), so a test can
change it while the server runs (write it atomically):
    {"delay_ms": 0,
     "rules": [{"rcpt": "x@y", "code": 451, "times": 1}]}
  - each rule answers `code` (4xx or 5xx) at RCPT TO for that recipient (compared
    case-insensitively); with "times": N only the first N times, then the recipient is
    accepted; with "text", that text follows the code (e.g. "5.7.1 Message refused by
    policy") instead of the usual one. Counts start afresh whenever the file is rewritten.
  - delay_ms delays the final reply to DATA (a slow server).
Every refused RCPT is appended to DIR/rejects.jsonl:
    {"mail_from": "...", "rcpt": "...", "code": 451, "peer": "127.0.0.1:PORT"}
A missing or empty rules file means: accept everything at once. A rules file that
cannot be parsed makes the server answer 451 to every RCPT and say why on stderr, so a
test never silently runs against the wrong rules.

Exits cleanly (status 0) on SIGTERM or SIGINT, and, with --exit-on-stdin-eof, when its
standard input is closed (the test process that started it has gone away).
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import threading

try:
    from aiosmtpd.smtp import SMTP
except ImportError:  # pragma: no cover - depends on the machine
    sys.stderr.write(
        "smtp_server.py: cannot import aiosmtpd with %s.\n"
        "Install it: apt-get install python3-aiosmtpd (Debian's /usr/bin/python3),\n"
        "or pip install aiosmtpd, or run `bash .ci/run`.\n" % sys.executable
    )
    sys.exit(3)


def log(message):
    sys.stderr.write("smtp_server: %s\n" % message)
    sys.stderr.flush()


def write_atomically(path, data):
    """Write bytes to path so that a reader sees either nothing or all of it."""
    directory = os.path.dirname(path) or "."
    temporary = os.path.join(directory, ".%s.tmp" % os.path.basename(path))
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def append_line(path, record):
    """Append one JSON line with a single write(), so lines never interleave."""
    line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def format_peer(peer):
    if isinstance(peer, (tuple, list)) and len(peer) >= 2:
        return "%s:%s" % (peer[0], peer[1])
    return str(peer)


class Rules:
    """The rules file, re-read per transaction, with per-rule counters for `times`."""

    def __init__(self, path):
        self.path = path
        self.version = None
        self.delay_ms = 0
        self.rules = []
        self.used = []
        self.error = None

    def reload(self):
        if not self.path:
            return
        # The identity of the file (a rewrite renames a new inode into place) as well as
        # its bytes: writing the same rules again also starts the `times` counts afresh.
        try:
            with open(self.path, "rb") as file:
                status = os.fstat(file.fileno())
                content = file.read()
            version = (status.st_ino, status.st_mtime_ns, content)
        except FileNotFoundError:
            content = b""
            version = None
        if version == self.version:
            return
        self.version = version
        self.error = None
        self.delay_ms = 0
        self.rules = []
        self.used = []
        if not content.strip():
            return
        try:
            parsed = json.loads(content)
            if parsed is None:
                parsed = {}
            if not isinstance(parsed, dict):
                raise ValueError("the top level must be an object")
            unknown = set(parsed) - {"delay_ms", "rules"}
            if unknown:
                raise ValueError("unknown keys %s" % sorted(unknown))
            delay_ms = parsed.get("delay_ms", 0) or 0
            if not isinstance(delay_ms, (int, float)) or delay_ms < 0:
                raise ValueError("delay_ms must be a number >= 0")
            rules = parsed.get("rules", []) or []
            if not isinstance(rules, list):
                raise ValueError("rules must be a list")
            for rule in rules:
                if not isinstance(rule, dict):
                    raise ValueError("each rule must be an object")
                unknown = set(rule) - {"rcpt", "code", "times", "text"}
                if unknown:
                    raise ValueError("unknown rule keys %s" % sorted(unknown))
                if not isinstance(rule.get("rcpt"), str):
                    raise ValueError("rule.rcpt must be a string")
                code = rule.get("code")
                if not isinstance(code, int) or not 400 <= code <= 599:
                    raise ValueError("rule.code must be a 4xx or 5xx number")
                if not isinstance(rule.get("text", ""), str):
                    raise ValueError("rule.text must be a string")
                times = rule.get("times")
                if times is not None and (not isinstance(times, int) or times < 0):
                    raise ValueError("rule.times must be a whole number >= 0")
            self.delay_ms = delay_ms
            self.rules = rules
            self.used = [0] * len(rules)
            log("rules loaded: %s" % json.dumps(parsed, sort_keys=True))
        except ValueError as error:
            self.error = "%s: %s" % (self.path, error)
            log("bad rules file, answering 451 to every RCPT: %s" % self.error)

    def answer_for(self, rcpt):
        """The refusal code for this recipient, or None to accept. Counts the use."""
        if self.error is not None:
            return 451
        wanted = rcpt.lower()
        for index, rule in enumerate(self.rules):
            if rule["rcpt"].lower() != wanted:
                continue
            times = rule.get("times")
            if times is not None and self.used[index] >= times:
                continue
            self.used[index] += 1
            if "text" in rule:
                return "%d %s" % (rule["code"], rule["text"])
            return rule["code"]
        return None


def reply_text(code):
    if code == 421:
        return "421 4.3.0 Service not available (test rule)"
    if 400 <= code < 500:
        return "%d 4.2.0 Temporarily rejected (test rule)" % code
    return "%d 5.1.1 Recipient rejected (test rule)" % code


class Handler:
    def __init__(self, maildir, rules):
        self.maildir = maildir
        self.rules = rules
        self.sequence = self._last_sequence()

    def _last_sequence(self):
        last = 0
        for name in os.listdir(self.maildir):
            stem, dot, extension = name.partition(".")
            if dot and extension == "eml" and stem.isdigit():
                last = max(last, int(stem))
        return last

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # Offer PIPELINING as most real servers do (aiosmtpd reads commands in order, so
        # it serves a pipelining client correctly without saying so).
        session.host_name = hostname
        return responses[:-1] + ["250-PIPELINING"] + responses[-1:]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # A transaction starts here: pick up the current rules.
        self.rules.reload()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        code = self.rules.answer_for(address)
        if code is not None:
            append_line(
                os.path.join(self.maildir, "rejects.jsonl"),
                {
                    "mail_from": envelope.mail_from,
                    "rcpt": address,
                    "code": int(str(code)[:3]),
                    "peer": format_peer(session.peer),
                },
            )
            if isinstance(code, str):
                return code
            return reply_text(code)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content
        if content is None:
            content = envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        self.sequence += 1
        sequence = self.sequence
        write_atomically(os.path.join(self.maildir, "%06d.eml" % sequence), content)
        append_line(
            os.path.join(self.maildir, "log.jsonl"),
            {
                "seq": sequence,
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "peer": format_peer(session.peer),
                "size": len(content),
            },
        )
        delay_ms = self.rules.delay_ms
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000.0)
        return "250 OK queued as %06d" % sequence


def watch_stdin(loop, stop):
    """Stop the server when stdin reaches end of file (the parent went away)."""

    def read_until_eof():
        # os.read on the raw descriptor: a thread blocked in sys.stdin's buffered reader
        # holds its lock and makes the interpreter abort at exit.
        try:
            while os.read(0, 4096):
                pass
        except (OSError, ValueError):
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=read_until_eof, name="stdin-watch", daemon=True).start()


async def serve(arguments):
    maildir = os.path.abspath(arguments.maildir)
    os.makedirs(maildir, exist_ok=True)
    rules = Rules(os.path.abspath(arguments.rules) if arguments.rules else None)
    rules.reload()
    handler = Handler(maildir, rules)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    if arguments.exit_on_stdin_eof:
        watch_stdin(loop, stop)

    def new_session():
        # An explicit hostname: the default asks the resolver for this host's FQDN,
        # which can take seconds on a machine without DNS.
        return SMTP(handler, hostname="winback-test-smtp", enable_SMTPUTF8=True, loop=loop)

    server = await loop.create_server(new_session, host="127.0.0.1", port=0)
    port = server.sockets[0].getsockname()[1]
    write_atomically(os.path.abspath(arguments.port_file), b"%d\n" % port)
    log("listening on 127.0.0.1:%d, maildir %s" % (port, maildir))

    await stop.wait()
    log("stopping")
    server.close()
    try:
        await asyncio.wait_for(server.wait_closed(), timeout=2)
    except asyncio.TimeoutError:
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port-file", required=True, help="where to write the port")
    parser.add_argument("--maildir", required=True, help="where to save messages")
    parser.add_argument("--rules", help="JSON rules, re-read on every transaction")
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="exit when standard input is closed",
    )
    arguments = parser.parse_args()
    asyncio.run(serve(arguments))
    return 0


if __name__ == "__main__":
    sys.exit(main())
