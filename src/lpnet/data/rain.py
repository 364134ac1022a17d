"""Synthetic rain: streak layers added to a clean image, with the heavy-rain veil.

The model is the one the Rain100L/H benchmarks were made with (Yang et al., "Deep Joint Rain Detection and
Removal from a Single Image", CVPR 2017, the JORDER paper):

- light rain: ``O = B + S``;
- heavy rain: ``O = α (B + Σ_i S_i) + (1 − α) A``, several streak layers ``S_i`` at different depths, a
  global transmission ``α`` and an atmospheric light ``A`` (the veil of rain accumulation). The ``heavy``
  preset keeps ``α = 1`` (no veil): real Rain100H/Rain200H pairs never darken a pixel, which a veil with
  ``A < B`` would; ``heavy_veil`` is the earlier, denser preset with the veil;

and ``O`` is clipped to [0, 1]. Each streak layer is sparse noise (seeds) smeared along a direction by an
oriented line kernel of some length and width: the classic motion-blur recipe for rain. Layers go from near
(long, wide, bright, defocused) to far (short, thin, faint, dense). The streaks are grey (equal in R, G, B),
as in the benchmarks, whose rainy−clean differences have a chroma spread below 0.004.

Everything is vectorised over the batch: one kernel per (image, layer) is built on a grid and applied by FFT
(the cost does not grow with the streak length), and all randomness comes from one ``torch.Generator`` so a
seed gives the same image again (on the same kind of device).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia.filters
import torch
from torch import Tensor

from lpnet.data._common import Range, check_clean, rand, sample, validate_ranges

# Bounds each RainConfig range must lie in; they guard against typos, not taste.
_BOUNDS: dict[str, tuple[float, float]] = {
    "layers": (1, 8),
    "density": (0.0, 0.1),
    "length": (1.0, 400.0),
    "width": (0.1, 20.0),
    "angle": (-90.0, 90.0),
    "angle_spread": (0.0, 90.0),
    "brightness": (0.0, 2.0),
    "depth_falloff": (0.05, 1.0),
    "blur": (0.0, 10.0),
    "alpha": (0.05, 1.0),
    "atmosphere": (0.0, 1.0),
    "background_blur": (0.0, 10.0),
    "sideways": (0.0, 1.0),
    "dry": (0.0, 1.0),
}
# Drawn before every other number, and only where a config uses them, so that presets without them
# render exactly what they rendered before these settings existed (and the shipped weights retrain alike).
_CHANCES = ("sideways", "dry")

# A seed's amplitude is ``brightness`` times a uniform factor in [1 - SEED_SPREAD, 1]: streaks differ.
SEED_SPREAD = 0.6
_FWHM_OF_UNIT_SIGMA = 2 * math.sqrt(2 * math.log(2))
# Pixel-footprint σ (px) added to every streak so that sub-pixel lines stay visible on the grid.
PIXEL_SIGMA = 0.5


@dataclass(frozen=True)
class RainConfig:
    """Ranges ``(min, max)`` from which each image draws its rain; ``min == max`` fixes a value.

    Attributes:
        layers: number of depth layers (integers).
        density: streak seeds per pixel in the nearest layer; a layer at relative depth scale ``s`` has
            ``density / s`` (more, smaller streaks far away).
        length: streak length in pixels in the nearest layer (``length * s`` further away).
        width: streak thickness (full width at half maximum, px) in the nearest layer (``width * s``).
        angle: the image's rain direction in degrees from vertical; positive tilts clockwise (``/``).
        angle_spread: each layer's direction deviates from ``angle`` by up to this many degrees.
        brightness: peak intensity added by a streak of the nearest layer (``brightness * s`` further).
        depth_falloff: scale ``s`` of the farthest layer; the layers in between are spaced geometrically.
        blur: defocus σ (px) of the nearest layer (``blur * s**2`` further): near drops are out of focus.
        alpha: veil transmission α (1 = no veil).
        atmosphere: atmospheric light A, a grey level.
        background_blur: σ (px) of a Gaussian blur of the background (heavy rain scatters light).
        sideways: chance that an image's rain is turned by 90° (the image drawn in the range, then a coin):
            Rain100L stores portrait photos transposed, so about a third of its streaks run near horizontal.
        dry: chance that an image gets no rain at all (drawn the same way): rain-free samples teach the
            network to leave a photo without rain as it is.
    """

    layers: Range = (1, 1)
    density: Range = (0.004, 0.004)
    length: Range = (20.0, 20.0)
    width: Range = (1.0, 1.0)
    angle: Range = (0.0, 0.0)
    angle_spread: Range = (0.0, 0.0)
    brightness: Range = (0.3, 0.3)
    depth_falloff: Range = (1.0, 1.0)
    blur: Range = (0.0, 0.0)
    alpha: Range = (1.0, 1.0)
    atmosphere: Range = (0.8, 0.8)
    background_blur: Range = (0.0, 0.0)
    sideways: Range = (0.0, 0.0)
    dry: Range = (0.0, 0.0)

    def __post_init__(self) -> None:
        validate_ranges(self, _BOUNDS)


# Calibrated with rain_statistics on real pairs: three Rain100L-style test pairs (official samples), for heavy
# two Rain100H-style training pairs (official samples) and three Rain200H test pairs. Real light rain adds
# 0.017-0.034 on average and changes 5-11 % of the pixels by more than 0.1, in thin (~2 px) streaks ~35-50 px
# long within ±15° of vertical. Real heavy rain adds 0.08-0.26 (median pixel 0.06-0.24, 90th percentile
# 0.18-0.57) and changes 37-79 % of the pixels, in dense streaks that can cross; it only ever adds light:
# rainy >= clean in every channel of every pixel of all five heavy pairs, so there is no veil that darkens
# bright pixels towards an atmospheric light, and no blur of the background.
PRESETS: dict[str, RainConfig] = {
    "light": RainConfig(
        layers=(1, 2),
        density=(0.0004, 0.0015),
        length=(18.0, 65.0),
        width=(1.0, 2.0),
        angle=(-30.0, 30.0),
        angle_spread=(0.0, 15.0),
        brightness=(0.15, 0.45),
        depth_falloff=(0.5, 0.8),
        blur=(0.0, 0.5),
        sideways=(0.35, 0.35),
    ),
    "heavy": RainConfig(
        layers=(2, 3),
        density=(0.002, 0.005),
        length=(40.0, 100.0),
        width=(0.8, 2.0),
        angle=(-20.0, 20.0),
        angle_spread=(5.0, 25.0),
        brightness=(0.2, 0.4),
        depth_falloff=(0.4, 0.7),
        blur=(0.0, 0.8),
    ),
    # The first heavy preset: denser (2-4 layers; on whole photos it adds 0.15-0.5, saturates up to 2/3 of
    # the pixels) with the JORDER veil O = α(B + ΣS) + (1 − α)A and a background blur. Trained on with 80×80
    # crops its whole-image results collapse (NOTES-15.md); kept to reproduce that.
    "heavy_veil": RainConfig(
        layers=(2, 4),
        density=(0.004, 0.008),
        length=(40.0, 100.0),
        width=(0.8, 2.0),
        angle=(-20.0, 20.0),
        angle_spread=(5.0, 25.0),
        brightness=(0.15, 0.3),
        depth_falloff=(0.4, 0.7),
        blur=(0.0, 0.8),
        alpha=(0.9, 1.0),
        atmosphere=(0.75, 1.0),
        background_blur=(0.0, 0.6),
    ),
}
# Mixed, drizzle to downpour: what lpnet:mixed was trained on (every range from the first light preset's
# minimum to heavy's maximum; written out so that the light preset's calibration leaves it as it was).
PRESETS["mixed"] = RainConfig(
    layers=(1, 3),
    density=(0.0004, 0.005),
    length=(30.0, 100.0),
    width=(0.8, 2.0),
    angle=(-20.0, 20.0),
    angle_spread=(0.0, 25.0),
    brightness=(0.18, 0.45),
    depth_falloff=(0.4, 0.8),
    blur=(0.0, 0.8),
)

# Any rain at all, for the rain gauge (lpnet:gauge) rather than a derainer: every range of the presets above
# and wider (faint, dense, fine streaks; veils; defocused backgrounds; a third of the images dry), so that the
# gauge learns what rain looks like rather than one benchmark's levels.
PRESETS["any"] = RainConfig(
    layers=(1, 4),
    density=(0.0003, 0.02),
    length=(8.0, 150.0),
    width=(0.5, 2.5),
    angle=(-35.0, 35.0),
    angle_spread=(0.0, 25.0),
    brightness=(0.04, 0.5),
    depth_falloff=(0.3, 0.9),
    blur=(0.0, 1.5),
    alpha=(0.6, 1.0),
    atmosphere=(0.5, 1.0),
    background_blur=(0.0, 3.0),
    sideways=(0.1, 0.1),
    dry=(0.35, 0.35),
)


def _fft_size(n: int) -> int:
    """Smallest integer >= n whose prime factors are 2, 3 and 5 (fast FFT sizes)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def streak_kernels(length: Tensor, width: Tensor, angle: Tensor, blur: Tensor, radius: int) -> Tensor:
    """Oriented line kernels, one per entry of the parameter tensors.

    The cross-section is a Gaussian of the given FWHM widened by the defocus ``blur`` (its peak drops so the
    streak keeps its energy); the ends fade smoothly over ~10 % of the length.

    Args:
        length: streak lengths in pixels, shape ``(N,)``.
        width: FWHM thicknesses in pixels, ``(N,)``.
        angle: directions in degrees from vertical, positive clockwise (``/``), ``(N,)``.
        blur: defocus σ in pixels, ``(N,)``.
        radius: kernel half size ``r``.

    Returns:
        Kernels of shape ``(N, 2r + 1, 2r + 1)``, peak 1 for an unblurred streak; all on ``length``'s device.
    """
    coords = torch.arange(-radius, radius + 1, device=length.device, dtype=length.dtype)
    y, x = torch.meshgrid(coords, coords, indexing="ij")  # (K, K), y grows downwards
    theta = torch.deg2rad(angle)[:, None, None]
    # Direction u = (-sin θ, cos θ) in (x, y): θ > 0 sends the lower end to the left, a '/' streak.
    along = -x * torch.sin(theta) + y * torch.cos(theta)
    across = x * torch.cos(theta) + y * torch.sin(theta)
    sigma_w = (width / _FWHM_OF_UNIT_SIGMA)[:, None, None]
    blur = blur[:, None, None]
    sharp = torch.sqrt(sigma_w**2 + PIXEL_SIGMA**2)
    sigma_across = torch.sqrt(sharp**2 + blur**2)
    profile = (sharp / sigma_across) * torch.exp(-0.5 * (across / sigma_across) ** 2)
    half = (length / 2)[:, None, None]
    sigma_end = torch.sqrt(PIXEL_SIGMA**2 + blur**2 + (0.1 * half) ** 2)
    ends = 0.5 * (1 + torch.erf((half - along.abs()) / (math.sqrt(2) * sigma_end)))
    return profile * ends


def render_rain(
    clean: Tensor, config: RainConfig, generator: torch.Generator | None = None
) -> tuple[Tensor, list[dict]]:
    """Add synthetic rain to a batch of clean images.

    Each image draws its own parameters from the ranges of ``config``. The random stream is consumed in a
    fixed order and amount for a given batch shape, so the same generator state gives the same images.

    Args:
        clean: clean images of shape ``(B, 3, H, W)`` in [0, 1].
        config: parameter ranges, e.g. ``PRESETS["heavy"]``.
        generator: source of randomness (the global one when None). Numbers are drawn on its device and
            moved to ``clean``'s, so a CPU generator works for a CUDA batch.

    Returns:
        ``(rainy, params)``: rainy images ``(B, 3, H, W)`` in [0, 1] on ``clean``'s device and dtype, and one
        JSON-serialisable dict of drawn parameters per image.

    Raises:
        TypeError: ``clean`` is not a float tensor or ``config`` not a :class:`RainConfig`.
        ValueError: ``clean`` is not ``(B, 3, H, W)``.
    """
    check_clean(clean)
    if not isinstance(config, RainConfig):
        raise TypeError(f"config must be a RainConfig, got {type(config).__name__}")
    b, _, h, w = clean.shape
    dev = clean.device
    work = torch.float32 if clean.dtype in (torch.float16, torch.bfloat16) else clean.dtype
    max_layers = int(config.layers[1])

    # The chances of a turned or a dry image first (only those the config uses), then per-image scalars
    # (fixed order), then per-layer ones, then the seed noise.
    coins = {
        name: sample(getattr(config, name), b, generator, dev) > rand((b,), generator, dev)
        if getattr(config, name)[1] > 0
        else torch.zeros(b, dtype=torch.bool, device=dev)
        for name in _CHANCES
    }
    n_layers = torch.minimum(
        (config.layers[0] + (config.layers[1] - config.layers[0] + 1) * rand((b,), generator, dev)).floor(),
        torch.tensor(config.layers[1], device=dev),
    )
    p = {
        name: sample(getattr(config, name), b, generator, dev)
        for name in _BOUNDS
        if name != "layers" and name not in _CHANCES
    }
    p["angle"] = p["angle"] + 90.0 * coins["sideways"]
    # A dry image has no rain at all: no streaks (below), and no veil or blur of its background either.
    p["alpha"] = p["alpha"].masked_fill(coins["dry"], 1.0)
    p["background_blur"] = p["background_blur"].masked_fill(coins["dry"], 0.0)
    spread = (2 * rand((b, max_layers), generator, dev) - 1) * p["angle_spread"][:, None]

    # Relative depth scale of each layer: 1 (nearest) down to depth_falloff (farthest), geometric.
    idx = torch.arange(max_layers, device=dev, dtype=torch.float32)
    frac = idx[None] / (n_layers[:, None] - 1).clamp_min(1)
    scale = p["depth_falloff"][:, None] ** frac  # (B, L)
    active = idx[None] < n_layers[:, None]
    lay_angle = p["angle"][:, None] + spread
    lay_length = p["length"][:, None] * scale
    lay_width = p["width"][:, None] * scale
    lay_blur = p["blur"][:, None] * scale**2
    lay_bright = p["brightness"][:, None] * scale * active * ~coins["dry"][:, None]
    lay_density = p["density"][:, None] / scale * active

    # Kernel reach: half the longest streak plus its soft end, or three σ across.
    sigma_end = torch.sqrt(PIXEL_SIGMA**2 + lay_blur**2 + (0.05 * lay_length) ** 2)
    reach = torch.maximum(lay_length / 2 + 3 * sigma_end, 3 * (lay_width + lay_blur + 1))
    radius = math.ceil(float(reach.max()))
    kernels = streak_kernels(
        lay_length.reshape(-1), lay_width.reshape(-1), lay_angle.reshape(-1), lay_blur.reshape(-1), radius
    ).to(work)  # (B*L, K, K)

    # Seeds on a canvas 2r larger than the image: streaks may start outside the frame. One uniform draw
    # gives both where a seed is (u < density) and its amplitude (u / density is uniform on [0, 1)).
    hc, wc = _fft_size(h + 2 * radius), _fft_size(w + 2 * radius)
    u = rand((b, max_layers, hc, wc), generator, dev).to(work)
    dens = lay_density[..., None, None].to(work)
    hit = u < dens
    amp = lay_bright[..., None, None].to(work) * (1 - SEED_SPREAD * u / dens.clamp_min(1e-12))
    seeds = torch.where(hit, amp, torch.zeros((), device=dev, dtype=work))

    # Linear convolution by FFT: a kernel anchored at the origin shifts the result by r, and the crop
    # [2r, 2r + H) never reads wrapped-around values. Summing spectra over layers needs one inverse FFT.
    spectrum = torch.fft.rfft2(seeds) * torch.fft.rfft2(
        kernels.reshape(b, max_layers, *kernels.shape[-2:]), s=(hc, wc)
    )
    streaks = torch.fft.irfft2(spectrum.sum(1), s=(hc, wc))[
        :, 2 * radius : 2 * radius + h, 2 * radius : 2 * radius + w
    ]
    streaks = streaks.clamp_min(0)[:, None]  # (B, 1, H, W), FFT round-off removed

    background = clean.to(work)
    if float(p["background_blur"].max()) > 0:
        sigma = p["background_blur"].clamp_min(1e-3).to(work)
        ksize = 2 * math.ceil(3 * float(sigma.max())) + 1
        background = kornia.filters.gaussian_blur2d(background, ksize, torch.stack([sigma, sigma], 1))
    alpha = p["alpha"].to(work)[:, None, None, None]
    atmosphere = p["atmosphere"].to(work)[:, None, None, None]
    rainy = (alpha * (background + streaks) + (1 - alpha) * atmosphere).clamp(0, 1).to(clean.dtype)

    params = []
    for i in range(b):
        n = int(n_layers[i])
        entry = {"kind": "rain", "layers": n, **{name: bool(c[i]) for name, c in coins.items()}}
        entry.update({name: float(v[i]) for name, v in p.items()})
        entry["layer_angles"] = [float(a) for a in lay_angle[i, :n]]
        params.append(entry)
    return rainy, params


def rain_statistics(rainy: Tensor, clean: Tensor, max_lag: int = 160) -> dict[str, float]:
    """Statistics of the rain in one pair, to compare synthetic rain with a benchmark's.

    All come from the grey difference ``d = mean_c(rainy − clean)``:

    - ``mean_added``: mean of ``d``; ``coverage``: fraction of pixels with ``d > 0.1``;
    - ``angle`` (degrees from vertical, positive ``/``) and ``coherence`` (1 = one direction, 0 = none) from
      the structure tensor of ``max(d, 0)`` smoothed by a σ = 1 px Gaussian;
    - ``length`` and ``width`` (px) from the autocorrelation of that along and across ``angle``: twice the lag
      where it halves (exact for a uniform segment) and √2 times that lag (the FWHM of a Gaussian
      cross-section), less the smoothing in quadrature.

    Args:
        rainy: ``(3, H, W)`` in [0, 1].
        clean: ``(3, H, W)`` in [0, 1].
        max_lag: longest lag searched (px); ``length`` saturates at ``2 * max_lag``.

    Returns:
        dict of floats with the keys above.
    """
    if rainy.shape != clean.shape or rainy.dim() != 3:
        raise ValueError(
            f"rainy and clean must both be (3, H, W), got {tuple(rainy.shape)} and {tuple(clean.shape)}"
        )
    d = (rainy.double() - clean.double()).mean(0)
    # Smoothing by σ = 1 px first: thin slanted lines alias on the pixel grid and bias both the gradient
    # directions and the autocorrelation; the width is corrected for it below.
    s = kornia.filters.gaussian_blur2d(d.clamp_min(0)[None, None], 7, (1.0, 1.0))[0, 0]
    gy, gx = torch.gradient(s)
    jxx, jyy, jxy = (gx * gx).sum(), (gy * gy).sum(), (gx * gy).sum()
    # The dominant gradient is across the streaks; with u = (-sin θ, cos θ) its angle from x equals θ.
    theta = 0.5 * torch.atan2(2 * jxy, jxx - jyy)
    coherence = torch.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy).clamp_min(1e-12)

    h, w = s.shape
    z = s - s.mean()
    spec = torch.fft.rfft2(z, s=(2 * h, 2 * w))
    ones = torch.fft.rfft2(torch.ones_like(z), s=(2 * h, 2 * w))
    # Autocorrelation per overlapping pixel pair (unbiased), zero lag moved to the centre (h, w).
    acf = torch.fft.irfft2(spec * spec.conj(), s=(2 * h, 2 * w))
    count = torch.fft.irfft2(ones * ones.conj(), s=(2 * h, 2 * w)).clamp_min(1)
    acf = torch.fft.fftshift(acf / count)
    acf = acf / acf[h, w].clamp_min(1e-12)

    def half_lag(dx: float, dy: float) -> float:
        lags = torch.arange(0, max_lag + 1, dtype=torch.float64)
        xs, ys = w + lags * dx, h + lags * dy
        grid = torch.stack([xs / (2 * w - 1) * 2 - 1, ys / (2 * h - 1) * 2 - 1], -1)[None, None]
        prof = torch.nn.functional.grid_sample(acf[None, None], grid, align_corners=True)[0, 0, 0]
        below = torch.nonzero(prof < 0.5)
        if len(below) == 0:
            return float(max_lag)
        k = int(below[0])
        # Linear interpolation between the last lag above one half and the first below.
        return k - 1 + float((prof[k - 1] - 0.5) / (prof[k - 1] - prof[k]))

    st, ct = float(torch.sin(theta)), float(torch.cos(theta))
    return {
        "mean_added": float(d.mean()),
        "coverage": float((d > 0.1).double().mean()),
        "angle": math.degrees(float(theta)),
        "coherence": float(coherence),
        "length": 2 * half_lag(-st, ct),
        "width": math.sqrt(max(2 * half_lag(ct, st) ** 2 - _FWHM_OF_UNIT_SIGMA**2, 0.0)),
    }
