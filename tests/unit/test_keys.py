from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pplex_desktop.core import keys


def test_new_keys_are_well_formed_and_distinct() -> None:
    made = {keys.new_key() for _ in range(200)}
    assert len(made) == 200
    assert all(keys.is_well_formed(k) and len(k) == keys.KEY_LEN for k in made)


@given(st.integers(min_value=5, max_value=keys.KEY_LEN - 1), st.characters(categories=["L", "N"]))
def test_any_single_character_typo_is_caught(position: int, char: str) -> None:
    key = keys.new_key()
    typo = key[:position] + char + key[position + 1 :]
    if typo != key:
        assert not keys.is_well_formed(typo)


def test_shapes_that_are_not_keys() -> None:
    key = keys.new_key()
    for bad in ("", "pplx_", key[:-1], key + "a", "sk_" + key[3:], key.replace("pplx_", "PPLX_")):
        assert not keys.is_well_formed(bad)
