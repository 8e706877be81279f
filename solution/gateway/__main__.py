"""``python -m solution.gateway --config gw.json --port P``: run the course's gateway until SIGTERM / SIGINT.

Options: ``--host`` (default 127.0.0.1), ``--port`` (0: the OS picks one; the
bound URL is printed on standard output as ``gateway listening on <url>``),
``--impl solution|exercises`` (default: ``LB_IMPL``, else the reference),
``--log-level`` (the per-request JSON lines are INFO, on standard error).
A configuration error exits with status 2 and a one-line message.
"""

from __future__ import annotations

import argparse
import logging
import sys

from solution.gateway.serve import RunningGateway, run_gateway
from solution.gateway.config import GatewayConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solution.gateway", description="The course's OpenAI-compatible gateway.")
    parser.add_argument("--config", required=True, help="the gateway's JSON configuration (see solution/gateway/config.py)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port from the OS")
    parser.add_argument("--impl", choices=("solution", "exercises"), default=None)
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, args.log_level), format="%(message)s")
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

    run_gateway(config, host=args.host, port=args.port, impl=args.impl, ready=ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
