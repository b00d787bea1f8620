"""irat doctor: every section on a CPU, and a broken device path reported as a failed check."""

from __future__ import annotations

import json

import torch

from irat.cli import main
from irat.doctor import FAMILIES, device_run, device_vs_reference


def test_doctor_quick_runs_on_the_cpu_and_records_every_section(tmp_path, capsys):
    out = tmp_path / "doctor.json"
    assert main(["doctor", "--quick", "--device", "cpu", "--quiet", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert set(rep) >= {"environment", "correctness", "speed", "recommendations", "verdict"}
    env = rep["environment"]
    assert env["matmul_tflops_fp32"] > 0 and env["torch"] == torch.__version__ and "memory_gib" in env
    names = [c["check"] for c in rep["correctness"]]
    assert all(f"train {m}" in names for m in FAMILIES) and "train at+bf16+channels_last+compile" in names
    assert any(c["verdict"] == "skip" and "needs a second device" in c["detail"] for c in rep["correctness"])
    assert any(c["check"] == "stop after epoch 1, resume" and c["verdict"] == "pass" for c in rep["correctness"])
    rows = rep["speed"]["training"]
    assert rows and all(r["irat_examples_per_s"] > 0 and r["projected_cifar10_epoch_s_pgd10"] > 0 for r in rows)
    assert {e["attack"] for e in rep["speed"]["evaluation"]} == {"pgd20", "apgd-ce", "aa"}
    rec = rep["recommendations"]
    assert rec["small_model_jobs_per_device"] >= 1 and "precision" in rec["fast_path_settings"]
    assert "verdict: pass" in capsys.readouterr().out


def test_a_device_path_that_differs_is_a_failed_check_not_a_pass():
    """Two 'devices' simulated on the CPU: the same path agrees; a path whose step differs (a weight off by
    one part in a thousand, as a broken kernel would leave it) is reported as FAIL."""
    cpu = torch.device("cpu")
    healthy = device_vs_reference(cpu, cpu)
    assert healthy["verdict"] == "pass" and healthy["weights_rel_diff"] == 0.0
    calls = {"n": 0}

    def broken(model, x, y, dev):
        out = device_run(model, x, y, dev)
        calls["n"] += 1
        if calls["n"] == 1:  # the device under test
            out["weights"] = out["weights"] * 1.001
        return out

    bad = device_vs_reference(cpu, cpu, run=broken)
    assert bad["verdict"] == "FAIL" and bad["weights_rel_diff"] > 1e-4
