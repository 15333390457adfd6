"""How many problems of one file a report lists, and a stand-in for the rest — pure core.

A generated or pasted file can hold hundreds of thousands of problems. Reports list the first
`MAX_PROBLEMS_PER_FILE` of each file (in sorted order) and then one E199 problem saying how many
more there are. The loader may stop itemizing a file's problems once it has enough: it then adds a
`MoreProblems` that only counts the rest, and `cap_per_file` folds it into that E199 line.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from expctl.core.codes import hint, problem
from expctl.core.errors import Location, Problem

MAX_PROBLEMS_PER_FILE = 100
MORE_PROBLEMS_CODE = "E199"


def more_message(count: int) -> str:
    return f"… and {count} more problem{'s' if count != 1 else ''} in this file"


# The registry writes the limit out in the hint and title; tests/test_codes.py keeps them equal to it.
MORE_HINT = hint(MORE_PROBLEMS_CODE)


@dataclass(frozen=True)
class MoreProblems(Problem):
    """Stands for `count` problems of one file that were found but not itemized, located at the
    first of them. The loader adds one only beside at least `MAX_PROBLEMS_PER_FILE` itemized
    problems that all sort before every problem it stands for."""

    count: int = 0


def more_problems(location: Location, count: int) -> MoreProblems:
    return MoreProblems(MORE_PROBLEMS_CODE, location, more_message(count), MORE_HINT, count)


def problem_count(problems: Sequence[Problem]) -> int:
    """How many problems `problems` stands for, counting what each `MoreProblems` stands for."""
    return sum(p.count if isinstance(p, MoreProblems) else 1 for p in problems)


def cap_per_file(problems: Sequence[Problem], limit: int = MAX_PROBLEMS_PER_FILE) -> list[Problem]:
    """The problems sorted, at most `limit` of each file; a file with more gets one E199 problem
    after its first `limit`, at the first one left out, saying how many were left out."""
    shown: list[Problem] = []
    ordered = sorted(problems, key=Problem.sort_key)  # linear when already sorted, as loaders give them
    for _, group in itertools.groupby(ordered, key=lambda p: p.location.path):
        items = list(group)
        listed = [p for p in items if not isinstance(p, MoreProblems)]
        left_out = listed[limit:] + [p for p in items if isinstance(p, MoreProblems)]
        shown += listed[:limit]
        if left_out:
            first = min(p.location for p in left_out)
            shown.append(problem(MORE_PROBLEMS_CODE, first, more_message(problem_count(left_out))))
    return shown
