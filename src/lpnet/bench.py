"""CPU benchmark: every figure next to the plain eager reference measured in the same run, as a ratio.

``python -m lpnet.bench [--quick] [--threads 2] [--repeats 5] [--compile] [--output FILE.json]``

Inference (batch 1, float32): the reference is ``LPNet.forward`` as it is (eager, NCHW, under
``torch.no_grad``); beside it :func:`lpnet.models.fast.optimize_for_inference`, onnxruntime when installed,
and ``torch.compile`` (inductor, weights frozen) with ``--compile``, whose compilation time is reported
apart. Training: one step of batch 10 at 80×80 (forward, backward, Adam; L1 on every level against the
target's Gaussian pyramid), eager NCHW against channels-last, with the largest difference between their
loss curves. Each figure is the median of ``--repeats`` timed calls after a warm-up; peak RSS is the
process's high-water mark during that measurement (reset before it where Linux allows).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from lpnet.inference import derain_tiled
from lpnet.io import write_json
from lpnet.models import LPNet, gaussian_pyramid
from lpnet.models.fast import optimize_for_inference

FULL_SIZES = ((321, 481), (1024, 1024))
QUICK_SIZES = ((48, 64),)
TILED_SIZE = (4096, 4096)
TILE = 1024  # the Derainer default; the overlap is its default too (exact: the receptive field)
TRAIN_FULL = {"batch": 10, "size": 80, "steps": 10}
TRAIN_QUICK = {"batch": 2, "size": 32, "steps": 2}


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


def _row(
    task: str, size: tuple[int, int], method: str, stats: dict[str, Any], ref_ms: float
) -> dict[str, Any]:
    pixels = size[0] * size[1]
    return {
        "task": task,
        "size": f"{size[1]}x{size[0]}",  # width x height, as image sizes are usually written
        "method": method,
        **stats,
        "images_per_s": 1e3 / stats["ms"],
        "megapixels_per_s": pixels / 1e3 / stats["ms"],
        "speedup_vs_eager": ref_ms / stats["ms"],
    }


def _onnx_session(net: LPNet, threads: int, folder: str):
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


def _compiled(net: LPNet) -> Callable:
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True  # constant-fold the weights into oneDNN's packed layouts
    net_cl = net.to(memory_format=torch.channels_last)
    compiled = torch.compile(net_cl)
    return lambda x: compiled(x.contiguous(memory_format=torch.channels_last))


def bench_inference(
    net: LPNet, sizes, repeats: int, threads: int, with_compile: bool, notes: list[str]
) -> list[dict[str, Any]]:
    """Rows for each size: eager reference, fast path, onnxruntime, optionally torch.compile."""
    fast = optimize_for_inference(net)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        onnx = _onnx_session(net, threads, folder)
        if onnx is None:
            notes.append("onnxruntime not installed: no onnxruntime rows")
        compiled = _compiled(net) if with_compile else None
        for size in sizes:
            x = torch.rand(1, net.channels, *size)
            with torch.no_grad():
                ref = measure(lambda x=x: net(x), repeats)
            methods: dict[str, Callable] = {"fast": fast}
            if onnx is not None:
                methods["onnxruntime"] = onnx
            if compiled is not None:
                start = time.perf_counter()
                with torch.no_grad():
                    compiled(x)
                compile_s = time.perf_counter() - start
                notes.append(
                    f"torch.compile at {size[1]}x{size[0]}: first call (compilation) {compile_s:.1f} s"
                )
                methods["torch.compile"] = compiled
            rows.append(_row("inference", size, "eager (reference)", ref, ref["ms"]))
            for name, fn in methods.items():
                with torch.no_grad():
                    rows.append(
                        _row("inference", size, name, measure(lambda fn=fn, x=x: fn(x), repeats), ref["ms"])
                    )
    return rows


def bench_tiled(net: LPNet, repeats: int) -> list[dict[str, Any]]:
    """A 4096×4096 image through :func:`lpnet.inference.derain_tiled`, eager and fast per tile."""
    x = torch.rand(1, net.channels, *TILED_SIZE)
    fast = optimize_for_inference(net)
    options = {"tile": TILE}
    with torch.no_grad():
        ref = measure(lambda: derain_tiled(net, x, **options), repeats)
        fast_stats = measure(lambda: derain_tiled(net, x, derain_fn=fast.derain, **options), repeats)
    return [
        _row("inference, tiled", TILED_SIZE, "eager (reference)", ref, ref["ms"]),
        _row("inference, tiled", TILED_SIZE, "fast", fast_stats, ref["ms"]),
    ]


def _train_steps(net: LPNet, x: torch.Tensor, target: torch.Tensor, steps: int, channels_last: bool):
    """A fresh Adam on ``net``; returns ``(step, losses)`` where each ``step()`` runs one training step."""
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    levels = gaussian_pyramid(target, net.num_levels)
    losses: list[float] = []

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = sum(F.l1_loss(out, want) for out, want in zip(net(x), levels, strict=True))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    return step, losses


def bench_training(config: dict[str, int], repeats: int) -> tuple[list[dict[str, Any]], float]:
    """Eager NCHW against channels-last training steps from the same weights and data.

    Returns:
        The rows and the largest difference between the two loss curves (same steps, same order).
    """
    torch.manual_seed(0)
    size = (config["size"], config["size"])
    x = torch.rand(config["batch"], 3, *size)
    target = torch.rand(config["batch"], 3, *size)
    state = LPNet().state_dict()
    curves, rows = {}, []
    ref_ms = None
    for name, channels_last in (("eager (reference)", False), ("channels_last", True)):
        net = LPNet()
        net.load_state_dict(state)
        step, losses = _train_steps(net, x, target, config["steps"], channels_last)
        stats = measure(step, repeats=max(repeats, config["steps"]))
        ref_ms = ref_ms or stats["ms"]
        row = _row("training step", size, name, stats, ref_ms)
        row["steps_per_s"] = row.pop("images_per_s")
        row["megapixels_per_s"] *= config["batch"]
        row["batch"] = config["batch"]
        rows.append(row)
        curves[name] = losses
    a, b = curves.values()
    return rows, max(abs(u - v) for u, v in zip(a, b, strict=True))


def environment(threads: int) -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "threads": threads,
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "onednn": torch.backends.mkldnn.is_available(),
        "python": platform.python_version(),
    }


def run(
    quick: bool = False, threads: int = 2, repeats: int | None = None, with_compile: bool = False
) -> dict[str, Any]:
    """Run the whole benchmark and return its results as a JSON-ready dict (thread count restored after)."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        repeats = repeats or (2 if quick else 5)
        torch.manual_seed(0)
        net = LPNet().eval()
        notes: list[str] = []
        sizes = QUICK_SIZES if quick else FULL_SIZES
        inference = bench_inference(net, sizes, repeats, threads, with_compile, notes)
        if not quick:
            inference += bench_tiled(net, max(1, repeats // 2))
        training, loss_diff = bench_training(TRAIN_QUICK if quick else TRAIN_FULL, repeats)
    finally:
        torch.set_num_threads(previous_threads)
    return {
        "environment": environment(threads),
        "quick": quick,
        "inference": inference,
        "training": training,
        "training_loss_curve_max_abs_diff": loss_diff,
        "notes": notes,
    }


def format_table(results: dict[str, Any]) -> str:
    """The results as a plain-text table."""
    env = results["environment"]
    lines = [
        f"lpnet bench: torch {env['torch']}, {env['device']} ({env['cpu']}), {env['threads']} threads",
        f"{'task':<18}{'size':>11}  {'method':<19}{'ms':>9}{'per s':>9}{'MP/s':>8}{'RSS MB':>8}{'×eager':>8}",
    ]
    for row in results["inference"] + results["training"]:
        per_s = row.get("images_per_s", row.get("steps_per_s"))
        rss = f"{row['peak_rss_mb']:.0f}" if row["peak_rss_mb"] is not None else "n/a"
        lines.append(
            f"{row['task']:<18}{row['size']:>11}  {row['method']:<19}{row['ms']:>9.1f}{per_s:>9.2f}"
            f"{row['megapixels_per_s']:>8.2f}{rss:>8}{row['speedup_vs_eager']:>7.2f}×"
        )
    diff = results["training_loss_curve_max_abs_diff"]
    lines.append(f"training loss curves, eager vs channels_last: max |diff| {diff:.2e}")
    lines += [f"note: {note}" for note in results["notes"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m lpnet.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and 2 repeats (a few seconds)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed calls per figure (default 5, quick 2)"
    )
    parser.add_argument("--compile", action="store_true", help="add torch.compile rows (slow to compile)")
    parser.add_argument("--output", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.threads < 1 or (args.repeats is not None and args.repeats < 1):
        parser.error("--threads and --repeats must be >= 1")
    results = run(args.quick, args.threads, args.repeats, args.compile)
    print(format_table(results))
    if args.output is not None:
        write_json(args.output, results, sort_keys=False)
    return results


if __name__ == "__main__":
    main()
