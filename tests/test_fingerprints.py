"""Bit-identity of every method against the fingerprints recorded before the parts redesign.

A changed hash means a method now trains differently: if an operation order truly had to change,
re-record (`python tests/fingerprints.py --record fast`) and say why in the commit.
"""

from __future__ import annotations

import json

import pytest

from fingerprints import fingerprint, methods, record_path

RECORD = json.loads(record_path("fast").read_text())


def test_every_method_is_recorded() -> None:
    assert sorted(RECORD) == methods()


@pytest.mark.parametrize("method", sorted(RECORD))
def test_weights_bit_identical(method: str, tmp_path) -> None:
    assert fingerprint(method, "fast", tmp_path) == RECORD[method]
