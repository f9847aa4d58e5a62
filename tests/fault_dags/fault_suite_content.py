"""What the fault suite's chains read and must produce, from (seed, chain) alone.

The DAG stages :func:`chain_input` for each chain; job A upper-cases it (``upper.txt``), job B
writes the SHA-256 and the size of A's output (``digest.txt``). The benchmark's tally recomputes
both here and compares them with what S3 holds, so a lost or corrupted result cannot pass.
Imported by the DAG (from its DAGs folder) and by the benchmark; plain Python, no Airflow.
"""

from __future__ import annotations

import hashlib
import random

INPUT_NAME = "words.txt"
A_OUTPUT = "upper.txt"
B_OUTPUT = "digest.txt"
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"

# Job A: upper-case the staged file. Job B: digest and size of A's output.
JOB_A_SCRIPT = f"""
set -eu
src=$(find /inputs -type f -name {INPUT_NAME} | head -n 1)
[ -n "$src" ] || {{ echo "no {INPUT_NAME} under /inputs" >&2; exit 2; }}
mkdir -p /outputs
tr a-z A-Z < "$src" > /outputs/{A_OUTPUT}
echo "chain input $(wc -c < "$src") bytes"
"""
JOB_B_SCRIPT = f"""
set -eu
src=$(find /inputs -type f -name {A_OUTPUT} | head -n 1)
[ -n "$src" ] || {{ echo "no {A_OUTPUT} under /inputs" >&2; exit 2; }}
mkdir -p /outputs
{{ sha256sum < "$src" | cut -d' ' -f1; wc -c < "$src" | tr -d ' '; }} > /outputs/{B_OUTPUT}
cat /outputs/{B_OUTPUT}
"""


def chain_input(seed: int, chain: int, lines: int = 40) -> bytes:
    """The staged file of one chain: ``lines`` lines of lower-case words, different per chain."""
    rng = random.Random(f"{seed}/{chain}")
    rows = []
    for number in range(lines):
        words = ("".join(rng.choice(_ALPHABET) for _ in range(rng.randint(3, 9))) for _ in range(8))
        rows.append(f"chain {chain} line {number}: " + " ".join(words))
    return ("\n".join(rows) + "\n").encode()


def expected_a(seed: int, chain: int) -> bytes:
    return chain_input(seed, chain).upper()


def expected_b(seed: int, chain: int) -> bytes:
    upper = expected_a(seed, chain)
    return f"{hashlib.sha256(upper).hexdigest()}\n{len(upper)}\n".encode()
