"""The local web app: ``lpnet-app [port=7860] [host=127.0.0.1] [models=[mine.pt]]`` (``python -m lpnet.app``).

A page for people who will never type ``key=value``: drop one or many photos, choose a model (the adaptive
default ``lpnet:auto`` first, then the bundled ``lpnet:*`` weights, then the checkpoints named at start with
``models=[...]``), and see each result beside its input with a before/after slider, the time it took, its
output to download (or all of them as a zip) and, given the clean image too, its Y-PSNR/SSIM. Large photos
show a progress bar (tiles done / total).

The page derains through the command line's own path: each upload goes through
:meth:`lpnet.Derainer.derain_files` into a temporary folder, so a download is the very file
``python -m lpnet.derain`` writes, byte for byte, and a file the folder run refuses (unreadable,
several frames, NaN pixels, over ``max_pixels``) is the same one line, shown on the page, while the app
keeps serving.

Safety: it listens on 127.0.0.1 unless ``host`` says otherwise; the models are fixed when it starts (a
browser chooses from the list, it never names a path); uploads are limited to ``max_upload_mb``; requests
are queued and run one at a time, so memory stays that of one ``lpnet.derain`` run; everything it writes
(uploads, outputs, Gradio's cache) lies in one temporary folder, removed when it stops. It fetches nothing
from the internet: Gradio's analytics are off and the theme uses the system's fonts.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lpnet.cli import Outcome, command
from lpnet.config import AppCommandConfig, DerainCommandConfig, from_dict

# The pictures on the page keep their full resolution; the slider shows them this tall at most (zoom with
# its full-screen button).
SLIDER_HEIGHT = 640
# Request folders older than this are removed when a new request starts (their downloads have expired).
REQUEST_TTL_S = 3600


# --------------------------------------------------------------------------------------------------
# The models a browser may choose


def model_choices(extra: Sequence[str] = ()) -> list[str]:
    """The models offered: the default ``lpnet:auto`` first, then the bundled weights, then ``extra``."""
    from lpnet.checkpoint import BUNDLED_PREFIX, bundled_weights

    bundled = [f"{BUNDLED_PREFIX}{name}" for name in bundled_weights()]
    return list(dict.fromkeys([DerainCommandConfig.ckpt_path, *bundled, *map(str, extra)]))


class Models:
    """The :class:`lpnet.Derainer` of each offered model, built on first use and kept.

    Args:
        settings: the app's settings (the models named at start, and the derain settings they run with).

    Raises:
        FileNotFoundError, ValueError: a model named with ``models=[...]`` is missing or not a checkpoint
            (checked at start, so the page never offers a model that cannot run).
    """

    def __init__(self, settings: AppCommandConfig) -> None:
        self.settings = settings
        self.names = model_choices(settings.models)
        self._derainers: dict[str, Any] = {}
        for name in settings.models:
            self.get(name)

    def get(self, name: str):
        """The Derainer of ``name``, which must be one of :attr:`names` (nothing else is ever opened)."""
        from lpnet.apply import Derainer

        if name not in self.names:
            raise ValueError(f"model {name!r} is not offered; choose one of {self.names}")
        if name not in self._derainers:
            self._derainers[name] = Derainer.from_settings(name, self.settings)
        return self._derainers[name]


# --------------------------------------------------------------------------------------------------
# One request: uploads in, outputs, previews, scores and one line per failed file out (no Gradio here)


@dataclass
class ImageResult:
    """One derained upload.

    Attributes:
        name: the uploaded file's name.
        preview: the input as the browser can show it (PNG, EXIF orientation applied).
        output: the output ``lpnet.derain`` writes (the download).
        seconds: deraining time, decoding and writing included.
        model: the model, and for ``lpnet:auto`` the expert it chose.
        scores: ``{"psnr_y", "ssim_y", "input_psnr_y", "input_ssim_y"}`` against the clean image, if given.
        note: why a clean image given for it was not scored.
    """

    name: str
    preview: Path
    output: Path
    seconds: float
    model: str
    scores: dict[str, float] | None = None
    note: str | None = None


@dataclass
class RequestResult:
    """What a request made: the results in upload order, one line per failed file, and the zip of outputs."""

    results: list[ImageResult] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    archive: Path | None = None


def _choice(expert: str) -> str:
    """What a router chose, as the page says it: ``its light expert``, or a blend as it is."""
    return expert if "%" in expert else f"its {expert} expert"


def _named(line: str, folder: Path, name: str, path: Path) -> str:
    """A failure line with the request's temporary path replaced by the name the user uploaded."""
    return line.replace(str(path), name).replace(str(folder) + os.sep, "")


def _preview(source: Path, target: Path) -> Path:
    """The input decoded by lpnet's codec (orientation, 16-bit, alpha) as an 8-bit PNG a browser shows."""
    from lpnet.io import OutputImage, open_image

    image = open_image(source)
    out = OutputImage(image.height, image.width, image.grayscale, image.alpha)
    rows = max(1, 2**22 // max(1, image.width))  # strips: never the whole photo in float
    for top in range(0, image.height, rows):
        out.put(top, 0, image.window(top, 0, min(rows, image.height - top), image.width))
    return out.write(target)


def score(output: Path, clean: Path, rainy: Path) -> dict[str, float]:
    """Y-PSNR/SSIM of the written output (8 bits: what ``lpnet.eval`` scores) and of the rainy input.

    Raises:
        ValueError: the clean image's size differs from the photo's, or it is too small for SSIM.
        OSError: the clean image cannot be read.
    """
    from lpnet.io import read_image
    from lpnet.scoring import score_images

    target = read_image(clean)[None]
    scores = {}
    for prefix, path in (("", output), ("input_", rainy)):
        image = read_image(path)[None]
        if image.shape != target.shape:
            raise ValueError(
                f"the clean image {clean.name} is {target.shape[-1]}×{target.shape[-2]}, the photo "
                f"{image.shape[-1]}×{image.shape[-2]}: not scored"
            )
        scored = score_images(image, target)  # lpnet.eval's scores (the 8-bit image quantizes to itself)
        scores |= {f"{prefix}{name}": float(scored[name][0]) for name in ("psnr_y", "ssim_y")}
    return scores


def derain_uploads(
    derainer: Any,
    model: str,
    uploads: Sequence[str | os.PathLike],
    folder: str | os.PathLike,
    cleans: Sequence[str | os.PathLike] = (),
    on_tiles: Callable[[int, str, int, int], None] | None = None,
) -> RequestResult:
    """Derain uploaded files into ``folder`` with the command line's folder code, one file at a time.

    Args:
        derainer: the :class:`lpnet.Derainer` of ``model``.
        model: the model's name, for the page.
        uploads: the uploaded files (their names are kept).
        folder: an empty folder of this request; inputs are copied to ``in/<k>/``, outputs go to
            ``out/<k>/`` (one folder per upload: two uploads may share a name).
        cleans: clean images, the k-th for the k-th upload (fewer is fine): scored when given.
        on_tiles: ``on_tiles(k, name, done, total)`` as the tiles of upload ``k`` finish.

    Returns:
        A :class:`RequestResult`; every failure is one line naming the uploaded file.
    """
    folder = Path(folder)
    result = RequestResult()
    names = [Path(upload).name for upload in uploads]
    for k, (upload, name) in enumerate(zip(uploads, names)):
        source = folder / "in" / str(k) / name
        source.parent.mkdir(parents=True)
        shutil.copyfile(upload, source)
        tiles = None
        if on_tiles is not None:
            tiles = lambda _, done, total, k=k, name=name: on_tiles(k, name, done, total)  # noqa: E731
        start = time.perf_counter()
        try:
            summary = derainer.derain_files(source, folder / "out" / str(k), progress=False, on_tiles=tiles)
        except (OSError, ValueError) as err:  # e.g. a name without an image extension: one line, go on
            result.failed.append(_named(f"{err}", folder, name, source))
            continue
        seconds = time.perf_counter() - start
        result.failed += [_named(reason, folder, name, source) for _, reason in summary.failed]
        for output in summary.written:
            expert = derainer.last_expert
            item = ImageResult(
                name=name,
                preview=_preview(source, folder / "preview" / str(k) / f"{source.name}.png"),
                output=output,
                seconds=seconds,
                model=model if derainer.router is None else f"{model} ({_choice(expert)})",
            )
            if k < len(cleans) and cleans[k]:
                try:
                    item.scores = score(output, Path(cleans[k]), source)
                except (OSError, ValueError) as err:
                    item.note = _named(str(err), folder, name, source)
            result.results.append(item)
    if result.results:
        result.archive = _archive(result.results, names, folder / "lpnet-derained.zip")
    return result


def _archive(results: list[ImageResult], names: list[str], path: Path) -> Path:
    """A zip of the outputs, named as one folder run of all the uploads would name them."""
    from lpnet.apply.folder import output_names

    unique = list(dict.fromkeys(names))
    archive_names = dict(zip(unique, output_names([PurePath(n) for n in unique], "png")))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
        used: set[str] = set()
        for item in results:
            entry = str(archive_names[item.name])
            if entry in used:  # the same name uploaded twice
                entry = f"{Path(entry).stem}-{len(used) + 1}.png"
            used.add(entry)
            archive.write(item.output, entry)
    return path


def new_request_folder(root: Path) -> Path:
    """A fresh folder for one request under ``root``; request folders older than an hour are removed."""
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in root.iterdir():
        if old.is_dir() and now - old.stat().st_mtime > REQUEST_TTL_S:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=root, prefix="request-"))


def describe(result: RequestResult) -> str:
    """The page's summary of a request (Markdown): counts, and each failed file on its own line."""
    lines = [f"**{len(result.results)} derained, {len(result.failed)} failed.**"]
    lines += [f"- ⚠ {line}" for line in result.failed]
    return "\n".join(lines)


def caption(item: ImageResult) -> str:
    """One result's line under its slider: file, model, time, scores."""
    text = f"**{item.name}** → `{item.output.name}` · {item.model} · {item.seconds:.2f} s"
    if item.scores:
        s = item.scores
        text += (
            f" · Y-PSNR/SSIM {s['psnr_y']:.2f} dB / {s['ssim_y']:.4f}"
            f" (rainy input {s['input_psnr_y']:.2f} dB / {s['input_ssim_y']:.4f})"
        )
    if item.note:
        text += f" · {item.note}"
    return text


# --------------------------------------------------------------------------------------------------
# The page (Gradio)


def theme():
    """Gradio's default look with the system's fonts: its own theme imports Google Fonts (a request to the
    internet on every page load)."""
    import gradio as gr

    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )


def build_app(models: Models, requests: Path):
    """The page: uploads, the model, and one before/after slider, caption and download per result."""
    import gradio as gr

    from lpnet.io import IMAGE_EXTENSIONS

    types = sorted(IMAGE_EXTENSIONS)

    def run(files, cleans, model, progress=gr.Progress()):  # noqa: B008 (Gradio's way to ask for it)
        if not files:
            return [], "Drop one or more photos first.", gr.DownloadButton(value=None, visible=False)
        derainer = models.get(model)
        total = len(files)

        def on_tiles(k: int, name: str, done: int, tiles: int) -> None:
            progress((done, tiles), desc=f"{name} ({k + 1}/{total}): tiles", unit="tiles")

        result = derain_uploads(derainer, model, files, new_request_folder(requests), cleans or (), on_tiles)
        shown = [
            {"name": r.name, "preview": str(r.preview), "output": str(r.output), "caption": caption(r)}
            for r in result.results
        ]
        archive = gr.DownloadButton(
            value=str(result.archive) if result.archive else None, visible=bool(shown)
        )
        return shown, describe(result), archive

    # Gradio's copies of uploads and outputs are removed after an hour too, like the request folders.
    expiry = (REQUEST_TTL_S, REQUEST_TTL_S)
    with gr.Blocks(title="lpnet: derain photos", analytics_enabled=False, delete_cache=expiry) as demo:
        gr.Markdown(
            "# lpnet: remove rain from photos\n"
            "Drop photos (" + ", ".join(types) + "); each result shows beside its input (drag the slider), "
            "with the time it took and its PNG to download. Give the clean images too, in the same order, "
            "to see Y-PSNR/SSIM. Everything stays on this machine."
        )
        with gr.Row():
            photos = gr.File(label="Rainy photos", file_count="multiple", file_types=types, elem_id="photos")
            cleans = gr.File(
                label="Clean images (optional: scores)",
                file_count="multiple",
                file_types=types,
                elem_id="cleans",
            )
        with gr.Row():
            model = gr.Dropdown(models.names, value=models.names[0], label="Model", elem_id="model")
            start = gr.Button("Derain", variant="primary", elem_id="derain")
        # Not empty: the progress bar (tiles done / total) is drawn over this box while a request runs.
        status = gr.Markdown("Drop photos and press Derain.", elem_id="status", min_height=60)
        archive = gr.DownloadButton("Download all (zip)", elem_id="archive", visible=False)
        shown = gr.State([])

        @gr.render(inputs=shown)
        def results(items: list[dict[str, str]]) -> None:
            for item in items:
                gr.ImageSlider(
                    value=(item["preview"], item["output"]),
                    type="filepath",
                    label=f"{item['name']}: rainy | derained",
                    buttons=["fullscreen"],
                    max_height=SLIDER_HEIGHT,
                    interactive=False,
                )
                with gr.Row():
                    gr.Markdown(item["caption"], elem_classes=["lpnet-caption"])
                    gr.DownloadButton(
                        f"Download {Path(item['output']).name}",
                        value=item["output"],
                        elem_classes=["lpnet-download"],
                    )

        start.click(run, [photos, cleans, model], [shown, status, archive])
    return demo


def serve(settings: AppCommandConfig, on_start: Callable[[str], None] | None = None) -> str:
    """Start the app and block until Ctrl-C or SIGTERM; everything it wrote is removed. Returns its URL."""
    models = Models(settings)  # a bad models=[...] stops here, before anything is written
    root = Path(tempfile.mkdtemp(prefix="lpnet-app-"))
    # Gradio reads these when it is imported: its upload cache goes inside our folder, and no analytics.
    os.environ["GRADIO_TEMP_DIR"] = str(root / "gradio")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    previous = signal.signal(signal.SIGTERM, _interrupt)  # stop as on Ctrl-C, so the folder is removed
    try:
        demo = build_app(models, root / "requests")
        demo.queue(default_concurrency_limit=1)
        print(f"lpnet app: temporary folder {root} (removed when it stops)", flush=True)
        demo.launch(
            server_name=settings.host,
            server_port=settings.port,
            max_file_size=f"{settings.max_upload_mb}mb",
            theme=theme(),
            share=False,
            inbrowser=False,
            prevent_thread_lock=on_start is not None,
        )
        url = demo.local_url
        if on_start is not None:  # tests: the caller decides when it stops
            try:
                on_start(url)
            finally:
                demo.close()
        return url
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(root, ignore_errors=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(cfg: DictConfig) -> Outcome:
    """Serve the app until stopped (settings: :class:`lpnet.config.AppCommandConfig`)."""
    settings = from_dict(AppCommandConfig, OmegaConf.to_container(cfg, resolve=True), "app")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ValueError("the web app needs Gradio: pip install 'lpnet[app]' (or make install)") from None
    url = serve(settings)
    facts = [("served", url), ("models", ", ".join(model_choices(settings.models)))]
    return Outcome("lpnet app: stopped", facts)


main = command("app", run)

if __name__ == "__main__":
    main()
