"""The floor a plan is measured against: `python -m bench.floor DIR DATABASE_URL QUERIES.json`.

What any plan must do at the least, done as cheaply as Python allows: list the manifest files,
read them, parse them with PyYAML's C loader (`yaml.load_all` with `CSafeLoader`: no positions,
no validation), and run the three SELECTs of `expctl.adapters.store.reader` raw on psycopg in one read-only
transaction, fetching every row. It imports only yaml and psycopg and runs with the cyclic garbage
collector off (the least any reader must pay; `expctl` itself leaves it on). Prints its phases as
JSON; the runner measures the whole process from outside, like the `expctl` commands.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from typing import Any

import psycopg
import yaml


def list_files(directory: str) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [os.path.join(dirpath, f) for f in filenames if f.endswith((".yaml", ".yml"))]
    return sorted(found)


def main(argv: list[str]) -> None:
    directory, url, queries_file = argv
    with open(queries_file, encoding="utf-8") as handle:
        queries: list[str] = json.load(handle)
    t0 = time.perf_counter()
    files = list_files(directory)
    texts = []
    for path in files:
        with open(path, "rb") as handle:
            texts.append(handle.read().decode("utf-8"))
    t1 = time.perf_counter()
    documents: list[Any] = []
    for text in texts:
        documents.extend(yaml.load_all(text, Loader=yaml.CSafeLoader))
    t2 = time.perf_counter()
    rows = 0
    with psycopg.connect(url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        for query in queries:
            rows += len(conn.execute(query).fetchall())
        conn.rollback()
    t3 = time.perf_counter()
    json.dump({"files": len(files), "documents": len(documents), "rows": rows, "read_s": round(t1 - t0, 4),
               "parse_s": round(t2 - t1, 4), "sql_s": round(t3 - t2, 4)}, sys.stdout)


if __name__ == "__main__":
    gc.disable()
    main(sys.argv[1:])
