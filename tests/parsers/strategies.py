"""Hypothesis strategies for outside input: JSON-like trees, YAML-ish documents."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["0", "1", "inf", "-inf", "nan", "1e400", "9" * 40, "", " ", "Y", "N"])
)


def json_trees(keys: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Any]:
    """Nested dicts and lists of scalars, dict keys from ``keys`` (any short text by default)."""
    keys = keys if keys is not None else st.text(max_size=12)
    return st.recursive(
        SCALARS,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5)
        ),
        max_leaves=25,
    )


def mappings_with(
    known_keys: list[str], values: st.SearchStrategy[Any] | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts whose keys are mostly ``known_keys`` (so validation goes deep), some random."""
    keys = st.sampled_from(known_keys) | st.text(max_size=10)
    return st.dictionaries(keys, values if values is not None else json_trees(keys), max_size=6)
