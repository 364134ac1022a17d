"""The benchmark runs quickly, reports every figure beside the eager reference, and writes valid JSON."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

from lpnet import bench


def test_measure_takes_the_median():
    calls = []
    stats = bench.measure(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5
    assert stats["repeats"] == 3
    assert 0 <= stats["ms_min"] <= stats["ms"]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "sub" / "bench.json"
    assert run_cli(bench.main, "quick=true", "threads=1", f"output={out}") == 0
    return json.loads(out.read_text()), out


def test_quick_run_reports_ratios(quick):
    results, _ = quick
    env = results["environment"]
    assert env["threads"] == 1
    assert env["torch"]
    assert env["isa"] == bench._isa_flags()  # every table states the CPU's extensions
    methods = [row["method"] for row in results["inference"]]
    # The allocator's share and the code's share each have a row (every row in a fresh process).
    assert methods[:4] == ["eager (reference)", "eager + tuned allocator", "fast, default allocator", "fast"]
    assert ("fast bf16" in methods) == (bench.bf16_available() is None)
    # The whole-process rows: one photo (no pipeline=false variant), a folder; bf16 only where it runs.
    runs = [m for m in bench.FOLDER_METHODS if m != bench.BF16 or bench.bf16_available() is None]
    one_photo = [m for m in runs if "pipeline=false" not in m]
    assert [(row["task"], row["method"]) for row in results["folder"]] == [
        *(("one photo, whole", m) for m in one_photo),
        *(("folder, per photo", m) for m in runs),
    ]
    # The three ratios, each the matching row's against the plain script, or why it is missing.
    targets = {t["row"]: t for t in results["targets"]}
    assert list(targets) == ["one photo", "folder fp32", "folder bf16"]
    folder = {(row["task"], row["method"]): row for row in results["folder"]}
    assert targets["one photo"]["ratio"] == folder["one photo, whole", bench.DERAIN]["speedup_vs_eager"]
    assert targets["folder fp32"]["ratio"] == folder["folder, per photo", bench.DERAIN]["speedup_vs_eager"]
    if bench.bf16_available() is None:
        assert targets["folder bf16"]["ratio"] == folder["folder, per photo", bench.BF16]["speedup_vs_eager"]
    else:
        assert targets["folder bf16"]["ratio"] is None
        assert targets["folder bf16"]["not_measured"] == bench.bf16_available()
    assert sum(results["folder_stages"].values()) == pytest.approx(1.0)
    assert set(results["folder_stages"]) == {"decode", "derain", "encode and write"}
    for rows in (results["inference"], results["folder"][: len(one_photo)], results["training"]):
        ref = rows[0]
        assert ref["speedup_vs_eager"] == pytest.approx(1.0)
        for row in rows:
            assert row["ms"] > 0
            assert row["speedup_vs_eager"] == pytest.approx(ref["ms"] / row["ms"])
            assert row["megapixels_per_s"] > 0
    # both training variants start from the same weights and data: same loss curve up to fp32 rounding
    assert results["training_loss_curve_max_abs_diff"] < 1e-5
    assert [row["method"] for row in results["training"]] == ["eager (reference)", "fast (LitLPNet)"]
    assert all(row["steps_per_s"] > 0 for row in results["training"])


def test_worker_measures_one_row_in_this_process():
    spec = {"task": "training", "method": "eager (reference)", "size": [32, 32], "batch": 1, "steps": 2}
    stats = bench.run_worker({**spec, "repeats": 1, "threads": 1})
    assert stats["repeats"] == 2 and len(stats["losses"]) == 3  # one warm-up step, then the timed ones
    assert stats["losses"][0] != stats["losses"][-1]


def test_table_lists_every_row(quick):
    results, _ = quick
    table = bench.format_table(results)
    assert table.count("×") >= len(results["inference"]) + len(results["training"])
    assert "1 threads" in table
    assert results["environment"]["cpu"] in table and " ".join(results["environment"]["isa"]) in table
    for target in results["targets"]:
        shown = f"{target['ratio']:.2f}×" if target["ratio"] is not None else target["not_measured"]
        assert f"{target['row']}" in table and shown in table


def test_bad_arguments(capsys):
    assert run_cli(bench.main, "threads=0") == 2
    assert "threads and repeats must be >= 1" in capsys.readouterr().err
