"""CPU benchmark: every figure next to the plain eager reference measured in the same run, as a ratio.

``python -m lpnet.bench [quick=true] [threads=2] [repeats=5] [compile=true] [output=FILE.json]``

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
from lpnet.files import write_json

FULL_SIZES = ((321, 481), (1024, 1024))
QUICK_SIZES = ((48, 64),)
TILED_SIZE = (4096, 4096)
TILE = DerainConfig.tile  # the Derainer default; the overlap is its default too (exact)
TRAIN_FULL = {"batch": 10, "size": 80, "steps": 10}
TRAIN_QUICK = {"batch": 2, "size": 32, "steps": 2}
REFERENCE = "eager (reference)"
INFERENCE_METHODS = (REFERENCE, "eager + tuned allocator", "fast", "onnxruntime")
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
    from lpnet.models.fast import optimize_for_inference

    if method == REFERENCE:
        return net.derain
    if method == "eager + tuned allocator":
        tune_cpu_allocator()
        return net.derain
    if method == "fast":
        return optimize_for_inference(net).derain
    if method == "onnxruntime":
        return _onnx_runner(net, threads, folder)
    if method == "torch.compile":
        return _compiled_runner(net)
    raise ValueError(f"unknown inference method {method!r}")


def _measure_inference(spec: dict[str, Any]) -> dict[str, Any]:
    net = _seeded_net()
    x = torch.rand(1, net.channels, *spec["size"])
    with tempfile.TemporaryDirectory() as folder, torch.no_grad():
        runner = _inference_runner(spec["method"], net, spec["threads"], folder)
        if runner is None:
            return {"skipped": "onnxruntime not installed"}
        start = time.perf_counter()
        runner(x)  # the first call: oneDNN kernel creation, or torch.compile's compilation
        first_call_s = time.perf_counter() - start
        return {**measure(lambda: runner(x), spec["repeats"]), "first_call_s": first_call_s}


def _measure_tiled(spec: dict[str, Any]) -> dict[str, Any]:
    from lpnet.apply.tiling import derain_tiled
    from lpnet.models.fast import optimize_for_inference

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


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one row (``spec``: task, method, size, repeats, threads, ...) in this process."""
    measure_row = {"inference": _measure_inference, "tiled": _measure_tiled, "training": _measure_training}
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


def environment(threads: int) -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "threads": threads,
        "device": "cpu",
        "cpu": _cpu_name(),
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
) -> dict[str, Any]:
    """Run the whole benchmark, one process per row, and return its results as a JSON-ready dict."""
    repeats = repeats or (2 if quick else 5)
    base = {"threads": threads, "repeats": repeats}
    notes = [
        "each row ran in a fresh process; reference rows with PyTorch's defaults, lpnet's rows with the "
        "allocator tuned as lpnet's tools tune it (lpnet.allocator)"
    ]
    methods = (*INFERENCE_METHODS, "torch.compile") if with_compile else INFERENCE_METHODS
    inference = []
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
    return {
        "environment": environment(threads),
        "quick": quick,
        "inference": inference,
        "training": training,
        "training_batch": config["batch"],
        "training_loss_curve_max_abs_diff": max(abs(a - b) for a, b in zip(*curves, strict=True)),
        "notes": notes,
    }


def format_table(results: dict[str, Any]) -> str:
    """The results as a plain-text table."""
    env = results["environment"]
    lines = [
        f"lpnet bench: torch {env['torch']}, {env['device']} ({env['cpu']}), {env['threads']} threads",
        f"{'task':<18}{'size':>11}  {'method':<25}{'ms':>9}{'per s':>9}{'MP/s':>8}{'RSS MB':>8}{'×eager':>8}",
    ]
    for row in results["inference"] + results["training"]:
        per_s = row.get("images_per_s", row.get("steps_per_s"))
        rss = f"{row['peak_rss_mb']:.0f}" if row["peak_rss_mb"] is not None else "n/a"
        lines.append(
            f"{row['task']:<18}{row['size']:>11}  {row['method']:<25}{row['ms']:>9.1f}{per_s:>9.2f}"
            f"{row['megapixels_per_s']:>8.2f}{rss:>8}{row['speedup_vs_eager']:>7.2f}×"
        )
    diff = results["training_loss_curve_max_abs_diff"]
    lines.append(f"training loss curves, reference vs LitLPNet: max |diff| {diff:.2e}")
    lines += [f"note: {note}" for note in results["notes"]]
    return "\n".join(lines)


def run(cfg: Any) -> Outcome:
    """The command: ``python -m lpnet.bench [quick=true] [threads=2] [output=FILE.json]``."""
    if cfg.threads < 1 or (cfg.repeats is not None and cfg.repeats < 1):
        raise ValueError(f"threads and repeats must be >= 1, got threads={cfg.threads} repeats={cfg.repeats}")
    results = run_benchmark(cfg.quick, cfg.threads, cfg.repeats, cfg.compile)
    print(format_table(results))
    facts = []
    if cfg.output is not None:
        facts.append(("results", write_json(cfg.output, results, sort_keys=False)))
    return Outcome("lpnet bench done", facts, value=results)


main = command("bench", run)

if __name__ == "__main__":
    main()
