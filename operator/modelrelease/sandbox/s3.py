"""The sandbox's S3 API: moto in server mode on a loopback port chosen by the kernel.

`python -m modelrelease.sandbox.s3 --port 0 --port-file FILE` binds, writes the port number to FILE and serves
until SIGTERM or SIGINT. State is in memory.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from moto.server import ThreadedMotoServer


def write_port_file(path: Path, port: int) -> None:
    """Write atomically, so a reader polling for the file never sees it half-written."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"{port}\n")
    os.replace(partial, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelrelease.sandbox.s3", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 lets the kernel choose a free port")
    parser.add_argument("--port-file", type=Path, help="where to write the port number once listening")
    args = parser.parse_args(argv)

    # Block the stop signals before the server thread starts, so only sigwait below receives them.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    server = ThreadedMotoServer(args.host, args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    if args.port_file is not None:
        write_port_file(args.port_file, port)
    print(f"S3 API (moto) listening on http://{host}:{port}", file=sys.stderr, flush=True)
    signal.sigwait(stop_signals)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
