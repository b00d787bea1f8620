"""Runs written before parts owned their state (irat 0.1, checkpoint format 1) still load, evaluate and resume.

The fixtures in tests/fixtures/legacy_v0_1 were written by the release before the parts redesign
(a 2-epoch BiLAW run on 300 digits and a 4-epoch MMA run on 1200, tiny-CNN); their recovery checkpoints keep BiLAW's weight
net as extra["bilaw"] and MMA's radii as extra["mma_eps"].
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

import irat
from irat.checkpoints import load_checkpoint
from irat.cli import main
from irat.train import Trainer

LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy_v0_1"


def _copy(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(LEGACY / name, tmp_path / name))


def test_legacy_model_loads_and_evaluates(tmp_path):
    run = _copy(tmp_path, "bilaw")
    model = irat.load_model(run)
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    rec = tmp_path / "rec.json"
    argv = ["eval", str(run), "--attacks", "natural,pgd5", "--n", "40", "--device", "cpu", "--json", str(rec)]
    assert main([*argv, "--no-sanity"]) == 0
    res = json.loads(rec.read_text())["results"]
    assert 0 <= res["pgd5"] <= res["natural"]


def test_legacy_state_resumes_into_the_parts(tmp_path):
    bilaw = _copy(tmp_path, "bilaw")
    old = load_checkpoint(bilaw / "recovery.pt")["extra"]["bilaw"]["net"]
    t = Trainer(None, bilaw, resume=True, epochs=3)  # type: ignore[arg-type]
    new = t.parts.weighting.net.state_dict()
    assert old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old)
    t.fit()
    assert load_checkpoint(bilaw / "recovery.pt")["epoch"] == 3

    mma = _copy(tmp_path, "mma")
    radii = load_checkpoint(mma / "recovery.pt")["extra"]["mma_eps"]
    assert (radii > 0).sum() > 100  # most examples carry a radius
    t = Trainer(None, mma, resume=True, epochs=5)  # type: ignore[arg-type]
    assert torch.equal(t.parts.objective.radii, radii)


def test_an_old_recovery_file_reads_into_this_releases_shape():
    """The legacy mapping lives with checkpoint loading: the old top-level `best` becomes the checkpointing
    callback's state, the old {"bilaw": ...} the weighting part's."""
    from irat.checkpoints import load_checkpoint, recovery_state

    old = load_checkpoint(Path(__file__).parent / "fixtures" / "legacy_v0_1" / "bilaw" / "recovery.pt")
    assert "callbacks" not in old and "parts" not in old.get("extra", {})
    new = recovery_state(old)
    assert new["callbacks"]["checkpointing"]["best"] == old["best"]
    assert set(new["extra"]["parts"]["weighting"]) == set(old["extra"]["bilaw"])
    assert new["history"] and recovery_state(new) == new  # and a new file maps onto itself
