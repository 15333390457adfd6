"""Pure helpers of the state records."""

from __future__ import annotations

from expctl.core.state import membership_order


def test_membership_is_ordered_like_javascript_sort() -> None:
    # JavaScript compares UTF-16 code units: an emoji (surrogate pair D83D…) sorts before U+FFFF,
    # although its code point is larger; plain ASCII ids sort as usual and duplicates collapse.
    ids = ["preview/\uffff", "preview/😀", "preview/b", "preview/a", "preview/a"]
    assert membership_order(ids) == ("preview/a", "preview/b", "preview/😀", "preview/\uffff")
