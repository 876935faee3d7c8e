"""`python -m modelrelease.sandbox.apiserver --host 127.0.0.1 --port 0 --port-file FILE`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from .server import serve


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m modelrelease.sandbox.apiserver",
        description="In-memory Kubernetes API emulator (plain HTTP, no auth).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    parser.add_argument(
        "--bookmark-interval",
        type=float,
        default=10.0,
        help="seconds between BOOKMARK events on watches that allow them",
    )
    parser.add_argument(
        "--watch-history",
        type=int,
        default=10000,
        help="events kept for resuming watches; older resourceVersions get 410 Gone",
    )
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def ready(port: int) -> None:
        print(f"kubernetes API emulator listening on http://{args.host}:{port}", file=sys.stderr, flush=True)
        if args.port_file is not None:
            tmp = args.port_file.with_suffix(args.port_file.suffix + ".tmp")
            tmp.write_text(str(port))
            tmp.replace(args.port_file)

    await serve(
        args.host,
        args.port,
        bookmark_interval=args.bookmark_interval,
        watch_history=args.watch_history,
        ready=ready,
        stop=stop,
    )


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_main(_parse(argv)))


if __name__ == "__main__":
    main()
