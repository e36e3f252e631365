"""benchmarks/repro_floor.py: each variant trains in its own process with its thread count and kernels, and a
finished variant is read back, not trained again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "src" / "grokkit" / "configs" / "smoke.yaml"


def _floor(out: Path, doc: Path, steps: int = 60) -> dict:
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "repro_floor.py"), "--config", str(SMOKE),
                    "--variants", "threads=1", "kernels=builtin", "--out", str(out), "--json", str(doc),
                    "seeds=[0]", f"training.steps={steps}", "training.eval_every=20"],
                   check=True, capture_output=True, text=True)
    return json.loads(doc.read_text())


def test_variants_run_with_their_settings_and_resume(tmp_path: Path) -> None:
    doc = _floor(tmp_path / "runs", tmp_path / "floor.json")
    by_name = {v["variant"]: v for v in doc["variants"]}
    assert set(by_name) == {"threads=1", "kernels=builtin"}
    assert by_name["threads=1"]["threads"] == 1
    assert by_name["kernels=builtin"]["threads"] == 2
    assert by_name["kernels=builtin"]["environment"] == {"GROKKIT_FAST_KERNELS": "0"}
    for v in by_name.values():
        assert v["steps"] == 60
        assert len(v["members"]) == 1 and v["members"][0]["seed"] == 0
        assert 0.0 <= v["members"][0]["final_test_acc"] <= 1.0
    summaries = {name: Path(v["directory"]) / "summary.json" for name, v in by_name.items()}
    stamps = {name: p.stat().st_mtime_ns for name, p in summaries.items()}
    again = _floor(tmp_path / "runs", tmp_path / "floor2.json")  # finished variants are read, not retrained
    assert {name: p.stat().st_mtime_ns for name, p in summaries.items()} == stamps
    assert again["variants"] == doc["variants"]
    assert [r["variant"] for r in doc["rows"]] == ["threads=1", "kernels=builtin"]
    with pytest.raises(subprocess.CalledProcessError):  # other overrides on the same directories: refused
        _floor(tmp_path / "runs", tmp_path / "floor3.json", steps=80)
    assert not (tmp_path / "floor3.json").exists()
