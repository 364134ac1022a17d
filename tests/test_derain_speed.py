"""The derain path's fixed cost (its import set), shards of a folder, and precision=bf16."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_dir_or_skip
from PIL import Image

from lpnet import Derainer, LPNet, save_checkpoint
from lpnet.apply.folder import in_shard, parse_shard
from lpnet.metrics import psnr_y, quantize
from lpnet.models.fast import bf16_unsupported

SRC = Path(__file__).resolve().parents[1] / "src"
# Top-level packages a derain run never needs: each costs a second or more of start-up (sympy and mpmath
# came with torch's symbolic shapes through meta tensors; the rest are training's and plotting's), and
# Hydra with OmegaConf (~0.3 s: a command line of plain words is read without them, lpnet.cli.plain_settings).
FORBIDDEN = {
    "sympy", "mpmath", "lightning", "pytorch_lightning", "matplotlib", "scipy", "kornia", "wandb", "pandas",
    "torchmetrics", "skimage", "rich", "onnx", "onnxruntime", "optuna", "torchvision", "hydra", "omegaconf",
    "yaml", "antlr4",
}  # fmt: skip
# Submodules of torch that import its compiler stack (what pulled sympy in).
FORBIDDEN_TORCH = ("torch._dynamo", "torch._inductor", "torch.fx.experimental.symbolic_shapes")
# Modules beyond `import torch`'s own (measured: `import lpnet.derain` +137, a whole derain run +278).
IMPORT_BUDGET = 200
RUN_BUDGET = 400
# Pillow loads five plugins first (Image.preinit); the other ~40 (Image.init) cost ~30-80 ms to import.
PILLOW_FIRST = {f"PIL.{name}ImagePlugin" for name in ("Bmp", "Gif", "Jpeg", "Ppm", "Png")}
DUMP_MODULES = "import atexit, json, sys; atexit.register(lambda: print(json.dumps(sorted(sys.modules))))"


def _modules(code: str, *args: str) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _heavy(modules: set[str]) -> list[str]:
    tops = {name.split(".")[0] for name in modules}
    plugins = {m for m in modules if m.startswith("PIL.") and m.endswith("ImagePlugin")} - PILLOW_FIRST
    return sorted(tops & FORBIDDEN) + [m for m in FORBIDDEN_TORCH if m in modules] + sorted(plugins)


def test_import_and_a_derain_run_stay_within_their_module_budget(tmp_path):
    torch_only = len(_modules(f"{DUMP_MODULES}; import torch"))
    imported = _modules(f"{DUMP_MODULES}; import lpnet.derain")
    assert not _heavy(imported)
    assert len(imported) - torch_only <= IMPORT_BUDGET, len(imported) - torch_only
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(tmp_path / "a.png")
    run = (
        f"{DUMP_MODULES}; import runpy; sys.argv[0] = 'lpnet.derain'; "
        "runpy.run_module('lpnet.derain', run_name='__main__')"
    )
    ran = _modules(run, f"input={tmp_path / 'a.png'}", f"output={tmp_path / 'out'}", "progress=false")
    assert (tmp_path / "out" / "a.png").is_file()  # the run did derain: its import set is a real one
    assert not _heavy(ran)
    assert len(ran) - torch_only <= RUN_BUDGET, len(ran) - torch_only


def test_a_tool_leaves_its_objects_to_the_os_at_exit(tmp_path):
    """The interpreter's last garbage collection would walk every object of torch's import (~0.15 s of a
    one-photo run): lpnet's tools freeze them (gc.freeze) once the exit handlers registered during the run
    have run. The handler registered here, before the run, runs after lpnet's: it sees them frozen."""
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(tmp_path / "a.png")
    run = (
        "import atexit, gc, runpy, sys; atexit.register(lambda: print('frozen', gc.get_freeze_count())); "
        "sys.argv[0] = 'lpnet.derain'; runpy.run_module('lpnet.derain', run_name='__main__')"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    argv = [f"input={tmp_path / 'a.png'}", f"output={tmp_path / 'out'}", "progress=false"]
    done = subprocess.run([sys.executable, "-c", run, *argv], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "a.png").is_file()
    label, frozen = done.stdout.strip().splitlines()[-1].split()
    assert label == "frozen" and int(frozen) > 100_000  # `import torch` alone makes ~170k


# Counts Hydra's compositions (every one loads the config files: ConfigLoaderImpl.load_configuration).
COUNT_COMPOSITIONS = (
    "import atexit, sys; from hydra._internal.config_loader_impl import ConfigLoaderImpl as L; "
    "calls = []; load = L.load_configuration; "
    "L.load_configuration = lambda self, *a, **k: calls.append(1) or load(self, *a, **k); "
    "atexit.register(lambda: print('compositions', len(calls)))"
)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (("overwrite=True",), 1),  # a word Hydra must read: composed once (hydra.main composes twice)
        ((), 0),  # plain words: read without Hydra at all
        (("-m", "shard=0/2,1/2"), 6),  # a sweep is hydra.main's: once for the mode, the sweep, each job
    ],
)
def test_a_one_photo_run_composes_its_settings_once(settings, expected, tmp_path):
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(tmp_path / "a.png")
    run = (
        f"{COUNT_COMPOSITIONS}; import runpy; sys.argv[0] = 'lpnet.derain'; "
        "runpy.run_module('lpnet.derain', run_name='__main__')"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    argv = [*settings, f"input={tmp_path / 'a.png'}", f"output={tmp_path / 'out'}", "progress=false"]
    done = subprocess.run([sys.executable, "-c", run, *argv], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == f"compositions {expected}"
    assert (tmp_path / "out" / "a.png").is_file()


# ---- shards ---------------------------------------------------------------------------------------


def _derain_cli(*settings: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "lpnet.derain", *settings, "device=cpu", "progress=false"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_shards_together_write_exactly_the_unsharded_run(tmp_path):
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "m.pt", LPNet(width_multiplier=0.25, recursions=1))
    photos = tmp_path / "photos"
    rng = np.random.default_rng(0)
    # Clashing stems (x.jpg, x.png) get whole-name outputs: only a plan over the whole folder names them so.
    names = [f"p{i}.png" for i in range(9)] + ["sub/x.png", "sub/x.jpg", "sub/deeper/y.png"]
    for name in names:
        (photos / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(photos / name)
    whole = _derain_cli(f"ckpt_path={ckpt}", f"input={photos}", f"output={tmp_path / 'whole'}", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    expected = _tree(tmp_path / "whole")
    assert set(expected) >= {"sub/x.png.png", "sub/x.jpg.png"} and len(expected) == len(names)

    sharded = tmp_path / "sharded"
    sweep = _derain_cli(
        "-m", f"ckpt_path={ckpt}", f"input={photos}", f"output={sharded}", "shard=0/3,1/3,2/3",
        "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", cwd=tmp_path,
    )  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr
    assert _tree(sharded) == expected  # the same names and bytes
    # Each file written by one shard only: the shards' counts add up to the folder's.
    counts = [
        int(line.split()[3]) for line in sweep.stdout.splitlines() if line.startswith("── lpnet derain:")
    ]
    assert len(counts) == 3 and sum(counts) == len(names) and min(counts) > 0

    # A rerun of one shard with skip_existing finds its own outputs there and skips them all. (The
    # sweep's summaries arrive in the order the parallel jobs end, so shard 1's count is computed.)
    own = sum(in_shard(Path(name), (1, 3)) for name in names)
    rerun = _derain_cli(
        f"ckpt_path={ckpt}", f"input={photos}", f"output={sharded}", "shard=1/3", "skip_existing=true",
        cwd=tmp_path,
    )  # fmt: skip
    assert rerun.returncode == 0 and f"0 derained, {own} skipped" in rerun.stdout


def test_shard_split_is_stable_and_complete():
    paths = [Path(f"d{i % 7}/img{i}.jpg") for i in range(200)]
    for count in (1, 2, 5):
        owners = [[k for k in range(count) if in_shard(p, (k, count))] for p in paths]
        assert all(len(owner) == 1 for owner in owners)  # every file in exactly one shard
    # The hash of the path, not Python's salted hash(): the same split in any process (fixed values).
    assert [in_shard(Path("a/b.png"), (k, 4)) for k in range(4)].count(True) == 1
    assert in_shard(Path("a/b.png"), (zlib.crc32(b"a/b.png") % 4, 4))


@pytest.mark.parametrize("value", ["5/4", "-1/4", "1/0", "abc", "4/4", "1/2/3"])
def test_a_bad_shard_is_one_line_naming_it(value, tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    done = _derain_cli(
        f"input={tmp_path / 'a.png'}", f"output={tmp_path / 'out'}", f"shard={value}", cwd=tmp_path
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: shard must be K/N") and repr(value) in lines[0]
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="shard"):
        parse_shard(value)


# ---- precision=bf16 ----------------------------------------------------------------------------------

REFUSAL = bf16_unsupported(torch.device("cpu"))


@pytest.mark.skipif(REFUSAL is None, reason="this CPU computes bfloat16 natively: nothing is refused")
def test_bf16_is_refused_naming_the_missing_cpu_feature(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    done = _derain_cli(
        f"input={tmp_path / 'a.png'}", f"output={tmp_path / 'out'}", "precision=bf16", cwd=tmp_path
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [f"error: {REFUSAL}"]
    assert "precision=bf16" in lines[0] and ("amx_bf16" in lines[0] or "oneDNN" in lines[0])
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="precision=bf16"):
        Derainer(LPNet(), device="cpu", precision="bf16")


def test_an_unknown_precision_is_refused(tmp_path):
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'fp16'"):
        Derainer(LPNet(), device="cpu", precision="fp16")


def _tensor(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255


def _mean_psnr_y(derainer: Derainer, pairs: Path) -> float:
    """Mean Y-PSNR of the 8-bit outputs over the ``rain/rain-N.png`` ↔ ``norain/norain-N.png`` pairs."""
    scores = []
    for rainy in sorted((pairs / "rain").glob("*.png")):
        clean = _tensor(pairs / "norain" / rainy.name.replace("rain-", "norain-"))
        scores.append(float(psnr_y(quantize(derainer(_tensor(rainy))[None]), clean[None])))
    assert len(scores) >= 50  # the shared sets hold 50 or more pairs
    return float(np.mean(scores))


@pytest.mark.slow
@pytest.mark.skipif(REFUSAL is not None, reason=f"bf16 cannot run here: {REFUSAL}")
@pytest.mark.parametrize("pairs", ["rain100l-val", "rain100h-val"])
def test_bf16_stays_within_a_tenth_of_a_db_of_fp32_on_real_pairs(pairs):
    root = shared_dir_or_skip("real-rain", f"{pairs}/rain") / pairs
    fp32 = _mean_psnr_y(Derainer("lpnet:mixed", device="cpu"), root)
    bf16 = _mean_psnr_y(Derainer("lpnet:mixed", device="cpu", precision="bf16"), root)
    assert abs(bf16 - fp32) <= 0.1, (fp32, bf16)
