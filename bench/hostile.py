"""`python -m bench.hostile`: `expctl validate` on one file full of problems.

A pull request can add a file with tens of thousands of problems (generated, pasted, or hostile),
up to the 1 MiB size limit. For each case this writes one such manifest into a temporary directory
and runs `expctl validate` on it as a subprocess (the whole process, as `python -m bench` measures
its commands; best of `--repeat`), then prints the file size, the problems counted on the last line
of the output, and the wall time. A run that exceeds `--timeout` is stopped and shown as such.

Cases: N unknown keys at the top level, in an upstream and in a variant; N/5 variants with five
problems each; N duplicate keys; N key-like strings; and the densest file known, a 0.9 MB flow list
of empty variants (four missing fields per four bytes: 900,000 problems).
"""

from __future__ import annotations

import argparse
import random
import re
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HEAD = ("apiVersion: expctl/v1\nkind: ModelExperiment\nname: hostile\npublic_model_id: preview/hostile\n"
        "display_name: Hostile\n")
VARIANT = ("variants:\n  - label: control\n    weight: 1\n    upstream:\n      internal_id: up\n"
           "      base_url: https://up.example.com/v1\n{upstream}{variant}    api_key: {{from_env: KEY}}\n")
DENSEST_BYTES = 900_000
DEFAULT_SIZES = (1_000, 4_000, 16_000)
EXPCTL = [sys.executable, "-m", "expctl", "validate"]
PROBLEM_COUNT = re.compile(r"^(\d+) problem\(s\) in \d+ file\(s\)$", re.MULTILINE)


def _keys(n: int, indent: int) -> str:
    return "".join(f"{' ' * indent}unknown_{i}: 1\n" for i in range(n))


def unknown_top(n: int) -> str:
    return HEAD + _keys(n, 0)


def unknown_upstream(n: int) -> str:
    return HEAD + VARIANT.format(upstream=_keys(n, 6), variant="")


def unknown_variant(n: int) -> str:
    return HEAD + VARIANT.format(upstream="", variant=_keys(n, 4))


def bad_variants(n: int) -> str:
    """n/5 variants, each with five problems (E201, E204, E205, E206, E301)."""
    return HEAD + "variants:\n" + "  - {label: '', weight: 0, upstream: [], api_key: 1, bogus: 1}\n" * (n // 5)


def duplicate_keys(n: int) -> str:
    return HEAD + "description: x\n" * (n + 1)


def key_like_strings(n: int) -> str:
    rng = random.Random(n)
    alphabet = string.ascii_letters + string.digits
    body = "".join(f"        k{i}: sk-ant-{''.join(rng.choices(alphabet, k=24))}\n" for i in range(n))
    return HEAD + VARIANT.format(upstream="      extra_body:\n" + body, variant="")


def densest(size: int = DENSEST_BYTES) -> str:
    """A flow list of empty variants filling `size` bytes: four problems (E202) per four bytes."""
    start, end = HEAD + "variants: [", "{}]\n"
    return start + "{}, " * ((size - len(start) - len(end)) // 4) + end


SIZED_CASES: dict[str, Callable[[int], str]] = {
    "unknown keys, top level": unknown_top,
    "unknown keys in an upstream": unknown_upstream,
    "unknown keys in a variant": unknown_variant,
    "variants with 5 problems each": bad_variants,
    "duplicate keys": duplicate_keys,
    "key-like strings": key_like_strings,
}


def run_validate(directory: Path, timeout: float) -> tuple[float, str]:
    """Wall seconds of one `expctl validate DIRECTORY`, and its output."""
    started = time.perf_counter()
    run = subprocess.run([*EXPCTL, str(directory)], capture_output=True, text=True, timeout=timeout, check=False)
    if run.returncode != 1:
        raise SystemExit(f"expected exit 1 (problems), got {run.returncode}: {run.stderr[-2000:]}")
    return time.perf_counter() - started, run.stdout


def measure(name: str, text: str, workdir: Path, repeat: int, timeout: float) -> str:
    """One table row: case, file size, problems, wall time (best of `repeat`)."""
    directory = workdir / re.sub(r"[^a-z0-9]+", "-", name.lower())
    directory.mkdir()
    (directory / "m.yaml").write_text(text, encoding="utf-8")
    walls, output = [], ""
    for _ in range(repeat):
        try:
            wall, output = run_validate(directory, timeout)
        except subprocess.TimeoutExpired:
            return f"| {name} | {len(text) / 1000:,.0f} kB | ? | > {timeout:g} (stopped) |"
        walls.append(wall)
    found = PROBLEM_COUNT.search(output)
    problems = f"{int(found.group(1)):,}" if found else "?"
    return f"| {name} | {len(text) / 1000:,.0f} kB | {problems} | {min(walls):.2f} |"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile",
                                     description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="problems per sized case")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best is kept (default 3)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a run is stopped (default 600)")
    options = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in options.sizes.split(",") if s.strip()]
    cases = [(f"{name} (N = {n:,})", make(n)) for n in sizes for name, make in SIZED_CASES.items()]
    cases.append(("densest 0.9 MB file: [{}, {}, …] variants", densest()))
    print("| case | file | problems | wall s |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="expctl-hostile-") as workdir:
        for name, text in cases:
            print(measure(name, text, Path(workdir), max(1, options.repeat), options.timeout), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
