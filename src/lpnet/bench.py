"""CPU benchmark: every figure next to the plain eager reference measured in the same run, as a ratio.

``python -m lpnet.bench [quick=true] [targets_only=true] [threads=2] [repeats=5] [compile=true]
[output=FILE.json]``

First the issue's three whole-process ratios against a plain PyTorch script (one photo; a folder of 100
photos in fp32; the same with ``precision=bf16``, or why this CPU cannot run it), then every row.

Every row is measured in a fresh process of its own, so that no method inherits another's allocator
state or peak memory (in one shared process the eager reference's time swung 3× with what ran before it).
Reference rows run PyTorch as it comes; lpnet's rows run the way lpnet's tools run them.

Inference (batch 1, float32): ``LPNet.derain`` as it is (eager, NCHW, under ``torch.no_grad``), the same
with the allocator tuned (:mod:`lpnet.allocator`: how much of the gain is the allocator alone), the fast
path :func:`lpnet.models.fast.optimize_for_inference` (what ``Derainer`` runs), onnxruntime when installed,
and ``torch.compile`` (inductor, weights frozen) with ``compile=true``, whose compilation time is
reported apart.
A 4096×4096 image goes through :func:`lpnet.apply.tiling.derain_tiled` (1024-px tiles, the exact overlap).
Training: one step of batch 10 at 80×80 (forward, the paper's loss, backward, Adam): written plainly
(``LPNet.forward``, kornia's SSIM) against ``LitLPNet``'s own step (:func:`lpnet.models.fast.fast_forward`,
lpnet's SSIM), from the same weights and data, with the largest difference between their loss curves.
Each figure is the median of ``repeats`` timed calls after a warm-up; peak RSS is the process's
high-water mark during that measurement (reset before it where Linux allows).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lpnet.cli import Outcome, command
from lpnet.config import BenchCommandConfig, DerainConfig
from lpnet.files import atomic_write, write_json
from lpnet.models.fast import BF16_CPU_FLAGS, bf16_unsupported, cpu_flags, optimize_for_inference

FULL_SIZES = ((321, 481), (1024, 1024))
QUICK_SIZES = ((48, 64),)
TILED_SIZE = (4096, 4096)
TILE = DerainConfig.tile  # the Derainer default; the overlap is its default too (exact)
TRAIN_FULL = {"batch": 10, "size": 80, "steps": 10}
TRAIN_QUICK = {"batch": 2, "size": 32, "steps": 2}
REFERENCE = "eager (reference)"
INFERENCE_METHODS = (
    REFERENCE, "eager + tuned allocator", "fast, default allocator", "fast", "fast bf16", "onnxruntime"
)  # fmt: skip
# A folder method is the plain script or `lpnet.derain` with the settings that follow its name.
PLAIN = "plain script"
DERAIN = "lpnet.derain"
BF16 = "lpnet.derain precision=bf16"
FOLDER_METHODS = (PLAIN, "lpnet.derain pipeline=false", DERAIN, BF16)
# Whole processes are timed in rounds, every method once per round in turn (interleaved, so a load that
# comes and goes on a shared machine touches both sides alike); the median per method.
FOLDER_FULL = {"images": 100, "size": (320, 480), "rounds": 3}
FOLDER_QUICK = {"images": 6, "size": (48, 64), "rounds": 1}
ONE_PHOTO_FULL = {"images": 1, "size": (321, 481), "rounds": 5}
ONE_PHOTO_QUICK = {"images": 1, "size": (48, 64), "rounds": 1}
# The bar for each whole-process ratio against the plain script.
TARGETS = (("one photo", DERAIN, 1.1), ("folder fp32", DERAIN, 2.4), ("folder bf16", BF16, 3.2))
TRAINING_METHODS = (REFERENCE, "fast (LitLPNet)")
WORKER_TIMEOUT_S = 1800
# What a row's fresh process runs: one measurement, printed as JSON.
WORKER_SCRIPT = (
    "import json, sys; from lpnet.bench import run_worker; "
    "print(json.dumps(run_worker(json.loads(sys.argv[1]))))"
)


def _reset_peak_rss() -> bool:
    """Reset the process's peak RSS (Linux: ``echo 5 > /proc/self/clear_refs``); False where impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_rss_mb() -> float | None:
    """The process's peak resident memory in MiB (VmHWM), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def measure(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> dict[str, Any]:
    """Median wall time of ``fn`` in ms after ``warmup`` calls, with the peak RSS while it ran."""
    for _ in range(warmup):
        fn()
    _reset_peak_rss()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return {
        "ms": statistics.median(times),
        "ms_min": min(times),
        "repeats": repeats,
        "peak_rss_mb": _peak_rss_mb(),
    }


# ---- what one worker process measures -------------------------------------------------------------


def _seeded_net():
    from lpnet.models import LPNet

    torch.manual_seed(0)
    return LPNet().eval()


def _onnx_runner(net, threads: int, folder: str) -> Callable | None:
    """An onnxruntime session on the exported net, or None when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    from lpnet.export import INPUT_NAME, export_onnx

    path = export_onnx(net, Path(folder) / "lpnet.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {INPUT_NAME: x.numpy()})


def _compiled_runner(net) -> Callable:
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True  # constant-fold the weights into oneDNN's packed layouts
    compiled = torch.compile(net.to(memory_format=torch.channels_last))
    return lambda x: compiled(x.contiguous(memory_format=torch.channels_last))


def _inference_runner(method: str, net, threads: int, folder: str) -> Callable | None:
    from lpnet.allocator import tune_cpu_allocator
    from lpnet.models.fast import FastLPNet

    if method == REFERENCE:
        return net.derain
    if method == "eager + tuned allocator":
        tune_cpu_allocator()
        return net.derain
    if method == "fast":
        return optimize_for_inference(net).derain
    if method == "fast, default allocator":
        return FastLPNet(net.eval()).derain  # what optimize_for_inference does, minus the allocator
    if method == "fast bf16":  # precision=bf16 (lpnet.models.fast.bf16_conv)
        return None if bf16_available() else optimize_for_inference(net, precision="bf16").derain
    if method == "onnxruntime":
        return _onnx_runner(net, threads, folder)
    if method == "torch.compile":
        return _compiled_runner(net)
    raise ValueError(f"unknown inference method {method!r}")


def bf16_available() -> str | None:
    """None when this CPU computes bfloat16 natively through oneDNN; else why not (what derain says)."""
    return bf16_unsupported(torch.device("cpu"))


def _measure_inference(spec: dict[str, Any]) -> dict[str, Any]:
    net = _seeded_net()
    x = torch.rand(1, net.channels, *spec["size"])
    with tempfile.TemporaryDirectory() as folder, torch.no_grad():
        runner = _inference_runner(spec["method"], net, spec["threads"], folder)
        if runner is None:
            why = bf16_available() if spec["method"] == "fast bf16" else "onnxruntime not installed"
            return {"skipped": why}
        start = time.perf_counter()
        runner(x)  # the first call: oneDNN kernel creation, or torch.compile's compilation
        first_call_s = time.perf_counter() - start
        return {**measure(lambda: runner(x), spec["repeats"]), "first_call_s": first_call_s}


def _measure_tiled(spec: dict[str, Any]) -> dict[str, Any]:
    from lpnet.apply.tiling import derain_tiled

    net = _seeded_net()
    x = torch.rand(1, net.channels, *spec["size"])
    derain_fn = optimize_for_inference(net).derain if spec["method"] == "fast" else net.derain
    with torch.no_grad():
        return measure(lambda: derain_tiled(net, x, tile=TILE, derain_fn=derain_fn), spec["repeats"])


def _reference_loss(outputs: list[torch.Tensor], clean: torch.Tensor) -> torch.Tensor:
    """The paper's loss written plainly: L1 on every level, kornia's (1 − SSIM)/2 on the two finest."""
    import torch.nn.functional as F
    from kornia.losses import ssim_loss

    from lpnet.models import gaussian_pyramid

    targets = gaussian_pyramid(clean, len(outputs))
    l1 = sum(F.l1_loss(out, target) for out, target in zip(outputs, targets, strict=True))
    ssim = sum(ssim_loss(out, target, 11, padding="valid") for out, target in zip(outputs[-2:], targets[-2:]))
    return l1 + ssim


def _measure_training(spec: dict[str, Any]) -> dict[str, Any]:
    """Training steps from seeded weights and data; the loss of every step (warm-up included) comes back."""
    from lpnet.models import LPNet
    from lpnet.training.module import LitLPNet

    batch, size = spec["batch"], spec["size"]
    torch.manual_seed(0)
    if spec["method"] == REFERENCE:
        net = LPNet()
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

        def loss_of(rainy, clean):
            return _reference_loss(net(rainy), clean)

    else:
        from lpnet.allocator import tune_cpu_allocator

        tune_cpu_allocator()  # as `python -m lpnet.train` does
        module = LitLPNet()
        optimizer = module.configure_optimizers()

        def loss_of(rainy, clean):
            return module.criterion(module(rainy), clean)[0]

    generator = torch.Generator().manual_seed(1)
    rainy = torch.rand(batch, 3, *size, generator=generator)
    clean = torch.rand(batch, 3, *size, generator=generator)
    losses: list[float] = []

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(rainy, clean)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    stats = measure(step, repeats=max(spec["repeats"], spec["steps"]))
    return {**stats, "losses": losses}


# The obvious plain-PyTorch script a user would write first: PIL in, eager NCHW float32, PIL out, in turn.
PLAIN_SCRIPT = """
import sys, numpy as np, torch
from pathlib import Path
from PIL import Image
from lpnet import load_model
net, out = load_model(sys.argv[1]), Path(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
with torch.no_grad():
    for path in sorted(Path(sys.argv[2]).iterdir()):
        x = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255)
        y = net(x.permute(2, 0, 1)[None])[-1].clamp(0, 1)[0].permute(1, 2, 0)
        Image.fromarray((y.numpy() * 255).astype(np.uint8)).save(out / (path.stem + ".png"))
"""


def write_photo_folder(folder: Path, count: int, size: tuple[int, int]) -> Path:
    """``count`` rainy JPEG photos of ``size`` (H, W): crops of the bundled clean photos, heavy rain."""
    from PIL import Image

    from lpnet.data.clean import clean_sources
    from lpnet.data.rain import PRESETS, render_rain

    folder.mkdir(parents=True, exist_ok=True)
    photos = [load() for _, load in clean_sources("train")]
    generator = torch.Generator().manual_seed(0)
    for index in range(count):
        photo = photos[index % len(photos)]
        h, w = min(size[0], photo.shape[1]), min(size[1], photo.shape[2])
        top = int(torch.randint(photo.shape[1] - h + 1, (1,), generator=generator))
        left = int(torch.randint(photo.shape[2] - w + 1, (1,), generator=generator))
        clean = torch.nn.functional.interpolate(
            photo[None, :, top : top + h, left : left + w], size=size, mode="bilinear", align_corners=False
        )
        rainy, _ = render_rain(clean.clamp(0, 1), PRESETS["heavy"], generator)
        pixels = (rainy[0].permute(1, 2, 0).numpy() * 255).astype("uint8")
        with atomic_write(folder / f"photo-{index:03d}.jpg") as tmp:
            Image.fromarray(pixels).save(tmp, format="JPEG", quality=95)
    return folder


def _measure_folder(spec: dict[str, Any]) -> dict[str, Any]:
    """The whole process, start-up included, of one way to derain a folder (the row's method)."""
    folder, ckpt, out = spec["folder"], spec["ckpt"], spec["output"]
    if spec["method"] == PLAIN:
        cmd = [sys.executable, "-c", PLAIN_SCRIPT, ckpt, folder, out]
    else:
        cmd = [sys.executable, "-m", "lpnet.derain", f"ckpt_path={ckpt}", f"input={folder}", f"output={out}",
               "device=cpu", "progress=false", *spec["method"].split()[1:]]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"])}
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=WORKER_TIMEOUT_S)
    wall_ms = (time.perf_counter() - start) * 1e3
    if done.returncode != 0:
        raise RuntimeError(f"{spec['method']} failed:\n{done.stderr[-1000:]}")
    return {"ms": wall_ms / spec["images"], "ms_min": wall_ms / spec["images"], "repeats": 1,
            "peak_rss_mb": None, "wall_s": wall_ms / 1e3}  # fmt: skip


def _measure_stages(spec: dict[str, Any]) -> dict[str, float]:
    """Where a folder run's time goes, one image after another: decode, derain, encode and write."""
    from lpnet.apply import Derainer
    from lpnet.io import open_image

    derainer = Derainer(spec["ckpt"], device="cpu")
    totals = {"decode": 0.0, "derain": 0.0, "encode and write": 0.0}
    for path in sorted(Path(spec["folder"]).iterdir()):
        start = time.perf_counter()
        source = open_image(path)
        decoded = time.perf_counter()
        derained = derainer.derain_image(source)
        done = time.perf_counter()
        derained.write(Path(spec["output"]) / f"{path.stem}.png")
        written = time.perf_counter()
        totals["decode"] += decoded - start
        totals["derain"] += done - decoded
        totals["encode and write"] += written - done
    whole = sum(totals.values())
    return {stage: seconds / whole for stage, seconds in totals.items()}


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one row (``spec``: task, method, size, repeats, threads, ...) in this process."""
    measure_row = {
        "inference": _measure_inference,
        "tiled": _measure_tiled,
        "training": _measure_training,
        "folder": _measure_folder,
        "stages": _measure_stages,
    }
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(spec["threads"])
    try:
        return measure_row[spec["task"]](spec)
    finally:
        torch.set_num_threads(previous_threads)


# ---- the parent: one process per row --------------------------------------------------------------


def _in_subprocess(spec: dict[str, Any]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", WORKER_SCRIPT, json.dumps(spec)],
        capture_output=True, text=True, timeout=WORKER_TIMEOUT_S,
    )  # fmt: skip
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"benchmark worker for {spec['task']} / {spec['method']} failed:\n{tail}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _row(task: str, size: tuple[int, int], method: str, stats: dict[str, Any], ref_ms: float, batch: int = 1):
    pixels = size[0] * size[1] * batch
    row = {
        "task": task,
        "size": f"{size[1]}x{size[0]}",  # width x height, as image sizes are usually written
        "method": method,
        **stats,
        "megapixels_per_s": pixels / 1e3 / stats["ms"],
        "speedup_vs_eager": ref_ms / stats["ms"],
    }
    row["steps_per_s" if task.startswith("training") else "images_per_s"] = 1e3 / stats["ms"]
    return row


def _rows_for(task: str, label: str, size, methods, base: dict[str, Any], notes: list[str], batch: int = 1):
    """Measure ``methods`` (the reference first), each in its own process, as table rows."""
    rows: list[dict[str, Any]] = []
    ref_ms = None
    for method in methods:
        stats = _in_subprocess({**base, "task": task, "method": method, "size": list(size)})
        if "skipped" in stats:
            notes.append(f"{method}: {stats['skipped']}")
            continue
        if method == "torch.compile":
            compile_s = stats["first_call_s"]
            notes.append(f"torch.compile at {size[1]}x{size[0]}: first call (compilation) {compile_s:.1f} s")
        ref_ms = ref_ms or stats["ms"]
        rows.append(_row(label, size, method, stats, ref_ms, batch))
    return rows


def _whole_process_rows(
    label: str, folder: Path, ckpt: Path, config: dict[str, Any], base: dict[str, Any], notes: list[str]
) -> list[dict[str, Any]]:
    """One row per :data:`FOLDER_METHODS` method: whole processes on ``folder``, interleaved in rounds."""
    methods = [m for m in FOLDER_METHODS if m != BF16 or not bf16_available()]
    if BF16 not in methods and not any(note.startswith(BF16) for note in notes):
        notes.append(f"{BF16}: not measured: {bf16_available()}")
    if config["images"] == 1:  # one photo: start-up is the question, the pipeline variant adds nothing
        methods = [m for m in methods if "pipeline=false" not in m]
    spec = {**base, "images": config["images"], "folder": str(folder), "ckpt": str(ckpt)}
    runs: dict[str, list[dict[str, Any]]] = {method: [] for method in methods}
    for round_ in range(config["rounds"]):
        for number, method in enumerate(methods):
            output = str(folder.parent / f"{folder.name}-out{round_}-{number}")
            runs[method].append(
                _in_subprocess({**spec, "task": "folder", "method": method, "output": output})
            )
    rows = []
    for method in methods:
        per_photo = [run["ms"] for run in runs[method]]
        wall_s = statistics.median(run["wall_s"] for run in runs[method])
        stats = {"ms": statistics.median(per_photo), "ms_min": min(per_photo), "repeats": len(per_photo),
                 "peak_rss_mb": None, "wall_s": wall_s}  # fmt: skip
        rows.append(_row(label, config["size"], method, stats, rows[0]["ms"] if rows else stats["ms"]))
    return rows


def _folder_rows(
    config: dict[str, Any], one_photo: dict[str, Any], base: dict[str, Any], notes: list[str], stages: bool
):
    """Whole-process rows for one photo and for a folder of photos (each run a fresh process), and the
    stage shares of a folder run (None unless ``stages``)."""
    from lpnet.checkpoint import save_checkpoint

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        ckpt = save_checkpoint(root / "net.pt", _seeded_net())
        single = write_photo_folder(root / "one", 1, one_photo["size"])
        rows = _whole_process_rows("one photo, whole", single, ckpt, one_photo, base, notes)
        photos = write_photo_folder(root / "photos", config["images"], config["size"])
        rows += _whole_process_rows("folder, per photo", photos, ckpt, config, base, notes)
        shares = None
        if stages:
            spec = {**base, "folder": str(photos), "ckpt": str(ckpt), "output": str(root / "st")}
            shares = _in_subprocess({**spec, "task": "stages", "method": "stages"})
    (one_h, one_w), (h, w) = one_photo["size"], config["size"]
    notes.append(
        f"whole-process rows: one JPEG photo of {one_w}x{one_h} (median of {one_photo['rounds']}), and "
        f"{config['images']} JPEG photos of {w}x{h} per photo (median of {config['rounds']}); start-up "
        "included, the methods interleaved; ×eager here is against the plain script"
    )
    return rows, shares


def target_ratios(folder_rows: list[dict[str, Any]], notes: list[str]) -> list[dict[str, Any]]:
    """The issue's three whole-process ratios against the plain script, each with its target."""
    by_key = {(row["task"], row["method"]): row for row in folder_rows}
    targets = []
    for name, method, target in TARGETS:
        task = "one photo, whole" if name == "one photo" else "folder, per photo"
        row = by_key.get((task, method))
        why = None if row else next((n.split(": ", 2)[-1] for n in notes if n.startswith(method)), "not run")
        ratio = row["speedup_vs_eager"] if row else None
        targets.append({"row": name, "method": method, "ratio": ratio, "target": target, "not_measured": why})
    return targets


def _isa_flags() -> list[str]:
    """The CPU's vector and matrix extensions that matter to oneDNN's kernels."""
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", *BF16_CPU_FLAGS, "amx_tile", "amx_int8")
    present = cpu_flags()
    return [flag for flag in wanted if flag in present]


def environment(threads: int) -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "threads": threads,
        "device": "cpu",
        "cpu": _cpu_name(),
        "isa": _isa_flags(),
        "onednn": torch.backends.mkldnn.is_available(),
        "python": platform.python_version(),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_benchmark(
    quick: bool = BenchCommandConfig.quick,
    threads: int = BenchCommandConfig.threads,
    repeats: int | None = BenchCommandConfig.repeats,
    with_compile: bool = BenchCommandConfig.compile,
    targets_only: bool = BenchCommandConfig.targets_only,
) -> dict[str, Any]:
    """Run the whole benchmark (or only its whole-process rows: ``targets_only``), one process per row,
    and return its results as a JSON-ready dict."""
    repeats = repeats or (2 if quick else 5)
    base = {"threads": threads, "repeats": repeats}
    notes = [
        "each row ran in a fresh process; reference rows with PyTorch's defaults, lpnet's rows with the "
        "allocator tuned as lpnet's tools tune it (lpnet.allocator)"
    ]
    inference: list[dict[str, Any]] = []
    training: list[dict[str, Any]] = []
    curve_diff = None
    if not targets_only:
        methods = (*INFERENCE_METHODS, "torch.compile") if with_compile else INFERENCE_METHODS
        for size in QUICK_SIZES if quick else FULL_SIZES:
            inference += _rows_for("inference", "inference", size, methods, base, notes)
        if not quick:
            tiled_base = {**base, "repeats": max(1, repeats // 2)}
            inference += _rows_for(
                "tiled", "inference, tiled", TILED_SIZE, (REFERENCE, "fast"), tiled_base, notes
            )
        config = TRAIN_QUICK if quick else TRAIN_FULL
        side = (config["size"], config["size"])
        training = _rows_for(
            "training", "training step", side, TRAINING_METHODS, {**base, **config}, notes, config["batch"]
        )
        curves = [row.pop("losses") for row in training]
        curve_diff = max(abs(a - b) for a, b in zip(*curves, strict=True))
    folder_rows, stages = _folder_rows(
        FOLDER_QUICK if quick else FOLDER_FULL,
        ONE_PHOTO_QUICK if quick else ONE_PHOTO_FULL,
        base,
        notes,
        stages=not targets_only,
    )
    return {
        "environment": environment(threads),
        "quick": quick,
        "targets": target_ratios(folder_rows, notes),
        "inference": inference,
        "folder": folder_rows,
        "folder_stages": stages,
        "training": training,
        "training_batch": TRAIN_QUICK["batch"] if quick else TRAIN_FULL["batch"],
        "training_loss_curve_max_abs_diff": curve_diff,
        "notes": notes,
    }


def format_table(results: dict[str, Any]) -> str:
    """The results as a plain-text table, the issue's three target ratios first."""
    env = results["environment"]
    lines = [
        f"lpnet bench: torch {env['torch']}, {env['device']} ({env['cpu']}; {' '.join(env['isa']) or 'no'} "
        f"extensions), {env['threads']} threads",
        "whole process against the plain PyTorch script (ratio > 1: lpnet faster; indicative on a shared "
        "machine):",
    ]
    for target in results["targets"]:
        measured = (
            f"{target['ratio']:.2f}×"
            if target["ratio"] is not None
            else f"not measured: {target['not_measured']}"
        )
        lines.append(
            f"  {target['row']:<12} {target['method']:<29} {measured}   (target ≥ {target['target']}×)"
        )
    lines.append(
        f"{'task':<18}{'size':>11}  {'method':<29}{'ms':>9}{'per s':>9}{'MP/s':>8}{'RSS MB':>8}{'×eager':>8}"
    )
    for row in results["inference"] + results["folder"] + results["training"]:
        per_s = row.get("images_per_s", row.get("steps_per_s"))
        rss = f"{row['peak_rss_mb']:.0f}" if row["peak_rss_mb"] is not None else "n/a"
        lines.append(
            f"{row['task']:<18}{row['size']:>11}  {row['method']:<29}{row['ms']:>9.1f}{per_s:>9.2f}"
            f"{row['megapixels_per_s']:>8.2f}{rss:>8}{row['speedup_vs_eager']:>7.2f}×"
        )
    if results["folder_stages"] is not None:
        shares = ", ".join(f"{stage} {share:.0%}" for stage, share in results["folder_stages"].items())
        lines.append(f"folder, one photo after another: {shares} of the time")
    if results["training_loss_curve_max_abs_diff"] is not None:
        diff = results["training_loss_curve_max_abs_diff"]
        lines.append(f"training loss curves, reference vs LitLPNet: max |diff| {diff:.2e}")
    lines += [f"note: {note}" for note in results["notes"]]
    return "\n".join(lines)


def run(cfg: Any) -> Outcome:
    """The command: ``python -m lpnet.bench [quick=true] [threads=2] [output=FILE.json]``."""
    if cfg.threads < 1 or (cfg.repeats is not None and cfg.repeats < 1):
        raise ValueError(f"threads and repeats must be >= 1, got threads={cfg.threads} repeats={cfg.repeats}")
    results = run_benchmark(cfg.quick, cfg.threads, cfg.repeats, cfg.compile, cfg.targets_only)
    print(format_table(results))
    facts = []
    if cfg.output is not None:
        facts.append(("results", write_json(cfg.output, results, sort_keys=False)))
    return Outcome("lpnet bench done", facts, value=results)


main = command("bench", run)

if __name__ == "__main__":
    main()
