"""Every method trains as recorded, on any CPU: fingerprints of the weight update within a tolerance.

The fast fingerprints train in float64 (tests/fingerprints.py), where float summation order moves the
update by ~1e-15 of its norm and any real change by far more. Measured on this project's 2-core machine
(x86-64 with AVX-512), with `/tmp/fp`-style dumps of `fingerprint()` for every method:

- float order: default AVX-512 vs `ATEN_CPU_CAPABILITY=default` (no vectorisation): at most 1.6e-15;
  vs `ATEN_CPU_CAPABILITY=avx2` with two threads (`IRAT_FINGERPRINT_THREADS=2`): at most 2.9e-16;
- the smallest real changes tried: TRADES' β 6 → 6.0006 (trades, mart, gair-trades, mwpb-trades):
  5e-8 to 1.5e-7; GAIR's λ −1 → −0.9999: 1.2e-7; MAIL's γ 30 → 30.003: 2.3e-4; WMMR's α ×1.0001: 5e-4;
- a deliberately changed operation order in one objective, TRADES' KL taken as KL(p_adv ‖ p_nat)
  instead of KL(p_nat ‖ p_adv): trades 6.4e-7, gair-trades 5.9e-7, mail-trades 5.4e-7 — caught;
  the same KL merely reassociated (Σp·log p − Σp·log q): at most 9.5e-16 — passes, as a different CPU's
  summation order must (`python tests/fingerprints.py --check fast --methods trades,...` after the edit).

The tolerance (1e-10) lies five orders of magnitude from each. A failing method now trains differently:
if that is intended, re-record (`python tests/fingerprints.py --record fast`) and say why in the commit.
"""

from __future__ import annotations

import pytest

from fingerprints import TOLERANCE, distance, fingerprint, load_record, methods

RECORD = load_record("fast")


def test_every_method_is_recorded() -> None:
    assert sorted(RECORD) == methods()


@pytest.mark.parametrize("method", sorted(RECORD))
def test_training_matches_record(method: str, tmp_path) -> None:
    d = distance(fingerprint(method, "fast", tmp_path), RECORD[method])
    assert d <= TOLERANCE, f"{method} trains differently: relative distance {d:.2e} > {TOLERANCE:.0e}"


def test_a_real_change_is_caught(tmp_path) -> None:
    """The check is not blind: a 1e-4 relative change of TRADES' β lies far beyond the tolerance."""
    d = distance(fingerprint("trades", "fast", tmp_path, ["--set", "objective.beta=6.0006"]), RECORD["trades"])
    assert d > 100 * TOLERANCE
