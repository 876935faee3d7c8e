"""``python -m bench [NAME ...]``: run the named benchmarks (default: all) against one fresh sandbox."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from bench import alias_latency, chaos, digest, registry_sharing, retry_bound, scale
from bench.common import Env, environment

BENCHMARKS: dict[str, Callable[[Env], None]] = {
    "digest": digest.run,
    "registry_sharing": registry_sharing.run,
    "alias_latency": alias_latency.run,
    "scale": scale.run,
    "chaos": chaos.run,
}
ONLY_WHEN_NAMED = frozenset({"chaos"})
WITHOUT_SANDBOX: dict[str, Callable[[], None]] = {"retry_bound": retry_bound.run}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    known = [*BENCHMARKS, *WITHOUT_SANDBOX]
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one of {', '.join(known)}")
    # chaos (about half an hour at 50 moves) runs only when named.
    names = parser.parse_args().names or [name for name in known if name not in ONLY_WHEN_NAMED]
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(known)}")
    started = time.monotonic()
    for name in (n for n in names if n in WITHOUT_SANDBOX):
        began = time.monotonic()
        WITHOUT_SANDBOX[name]()
        print(f"({name}: {time.monotonic() - began:.0f}s)", flush=True)
    if any(name in BENCHMARKS for name in names):
        with environment() as env:
            for name in (n for n in names if n in BENCHMARKS):
                began = time.monotonic()
                BENCHMARKS[name](env)
                print(f"({name}: {time.monotonic() - began:.0f}s)", flush=True)
    print(f"\nall done in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
