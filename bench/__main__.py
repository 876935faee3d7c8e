"""``python -m bench [NAME ...]``: run the named benchmarks (default: all) against one fresh sandbox."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from bench import alias_latency, digest, registry_sharing
from bench.common import Env, environment

BENCHMARKS: dict[str, Callable[[Env], None]] = {
    "digest": digest.run,
    "registry_sharing": registry_sharing.run,
    "alias_latency": alias_latency.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one of {', '.join(BENCHMARKS)}")
    names = parser.parse_args().names or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    started = time.monotonic()
    with environment() as env:
        for name in names:
            began = time.monotonic()
            BENCHMARKS[name](env)
            print(f"({name}: {time.monotonic() - began:.0f}s)", flush=True)
    print(f"\nall done in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
