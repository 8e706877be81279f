"""``python -m solution.gateway --config gw.json --port P``: run the course's gateway until SIGTERM / SIGINT.

Options: ``--host`` (default 127.0.0.1), ``--port`` (0: the OS picks one; the
bound URL is printed on standard output as ``gateway listening on <url>``),
``--impl solution|exercises`` (default: ``LB_IMPL``, else the reference),
``--log-level`` (the per-request JSON lines are INFO, on standard error).
A configuration error exits with status 2 and a one-line message.

The log lines go to standard error through :class:`BatchedLines`: buffered,
and written every :data:`FLUSH_EVERY` seconds by the gateway's event loop
(a warning or an error at once, and whatever is left at exit), not with one
``write`` per request as logging's ``StreamHandler`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import sys

from solution.gateway.serve import RunningGateway, run_gateway
from solution.gateway.config import GatewayConfig


#: At most this many seconds pass between a log line and its write to standard error (a SIGKILL loses that much).
FLUSH_EVERY = 0.2


class BatchedLines(logging.StreamHandler):  # type: ignore[type-arg]
    """Each record as one line into a block-buffered copy of standard error, flushed in batches.

    logging's ``StreamHandler`` flushes after every record: on a busy gateway
    one ``write(2)`` per request.  Here INFO lines (one per request) wait in
    the buffer for :meth:`flush`, which the gateway's loop calls every
    :data:`FLUSH_EVERY` seconds (see :func:`main`) and ``logging.shutdown``
    calls at exit; a record at WARNING or above is flushed at once.
    """

    def __init__(self) -> None:
        raw = io.FileIO(os.dup(sys.stderr.fileno()), "w")  # a copy: closing the handler leaves fd 2 open
        super().__init__(io.TextIOWrapper(io.BufferedWriter(raw, 1 << 16), encoding=sys.stderr.encoding or "utf-8",
                                          errors="backslashreplace"))  # fmt: skip

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.acquire()
        try:
            self.flush()
            self.stream.close()
        finally:
            self.release()
            super().close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solution.gateway", description="The course's OpenAI-compatible gateway.")
    parser.add_argument("--config", required=True, help="the gateway's JSON configuration (see solution/gateway/config.py)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port from the OS")
    parser.add_argument("--impl", choices=("solution", "exercises"), default=None)
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    lines = None if logging.getLogger().handlers else BatchedLines()  # logging already set up (in-process): left as it is
    logging.basicConfig(handlers=[lines] if lines is not None else None, level=getattr(logging, args.log_level),
                        format="%(message)s")  # fmt: skip
    # the lines are "%(message)s" only: no record needs its thread or process (LogRecord skips looking them up,
    # a third of a record's cost, once per request)
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    try:
        config = GatewayConfig.from_json(args.config)
    except (OSError, TypeError, ValueError) as exc:
        print(f"python -m solution.gateway: bad configuration {args.config}: {exc}", file=sys.stderr)
        return 2

    def ready(running: RunningGateway) -> None:
        print(f"gateway listening on {running.url}", flush=True)
        if lines is None:
            return
        loop = asyncio.get_running_loop()

        def flush() -> None:
            lines.flush()
            loop.call_later(FLUSH_EVERY, flush)

        loop.call_later(FLUSH_EVERY, flush)

    run_gateway(config, host=args.host, port=args.port, impl=args.impl, ready=ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
