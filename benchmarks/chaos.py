"""Chaos over many rounds (issue 19): what broke, counted, per store.

Each round starts a center (``tests/chaos/harness.py``: a real ``axc up``; SQLite on a
tmpfs, or a PostgreSQL server of its own behind a proxy that can be cut), puts it under
load from four clients of the real Python client, injects ``--faults`` faults drawn at
random (kill -9 and restart, the database away or the disk full for up to 5 s, every
database session terminated, the PostgreSQL server restarted or stopped for 2-10 s, a
second controller started) at random moments, lets every job end,
and counts the broken promises. Prints one JSON object per round and one total per
store: {"store", "round", "faults", "acknowledged", ..., "not_found", "ran_twice",
"never_ran", "stuck", "wrong_charge", "holds_left", "balances_off", "duplicate_keys"};
every count after "faults" but the submissions should be 0.

    .venv/bin/python benchmarks/chaos.py [--rounds 10] [--faults 3] [--store both] [--seed N]

Needs root (it mounts a tmpfs, and runs PostgreSQL's server binaries as ``postgres``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' harness

from tests.chaos.harness import FAULTS, Counts, chaos, run_round


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--faults", type=int, default=3, help="faults per round")
    parser.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    stores = ("sqlite", "postgresql") if args.store == "both" else (args.store,)
    for store in stores:
        total = Counts()
        for n in range(args.rounds):
            faults = [rng.choice(list(FAULTS)) for _ in range(args.faults)]
            with (
                tempfile.TemporaryDirectory() as root,
                chaos(Path(root), store, dict(os.environ)) as ctx,
            ):
                counts = run_round(ctx, faults, rng)
            print(
                json.dumps({"store": store, "round": n + 1, "fault_list": faults, **counts.row()}),
                flush=True,
            )
            for name, value in counts.row().items():
                setattr(total, name, getattr(total, name) + value)
        print(json.dumps({"store": store, "round": "total", **total.row()}), flush=True)


if __name__ == "__main__":
    main()
