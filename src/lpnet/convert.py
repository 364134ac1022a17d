"""Official TensorFlow checkpoints → lpnet checkpoints, without TensorFlow:
``python -m lpnet.convert source=path/to/heavy_model output=heavy.pt [overwrite=true]``.

``source`` may also be a training checkpoint (``.../checkpoints/last.ckpt``): its network alone is written
as a plain lpnet checkpoint (kilobytes instead of the optimiser state), which is how ``make weights`` turns
a training run into the bundled ``lpnet:<name>`` weights.

The LPNet project page ships TF1 checkpoints: ``PREFIX.index`` + ``PREFIX.data-00000-of-00001``.

- ``.index`` is a LevelDB-style table (SSTable): data blocks of prefix-compressed ``key → value`` entries
  with restart points, an index block pointing at them, and a 48-byte footer ending in a magic number.
  Keys are variable names; values are ``BundleEntryProto`` messages (dtype, shape, shard, offset, size,
  crc32c); the empty key holds the ``BundleHeaderProto`` (shard count, endianness).
- ``.data-0000S-of-0000N`` holds the raw little-endian tensor bytes at those offsets.

The few protobuf fields needed are decoded by hand, so converting needs neither TensorFlow nor protobuf.

Variable mapping (``subnet1`` is the coarsest level, ``LPNet.subnets[0]``; TF kernels are HWIO, torch OIHW):

| TF variable | LPNet parameter | shape (TF) |
| --- | --- | --- |
| ``inference/subnet{n}/weights_0``, ``biases_0`` | ``subnets.{n-1}.head`` | 3×3×3×f |
| ``inference/subnet{n}/weights_1``, ``biases_1`` | ``subnets.{n-1}.blocks.0.conv1`` | 3×3×f×f |
| ``inference/subnet{n}/weights_2``, ``biases_2`` | ``subnets.{n-1}.blocks.0.conv2`` | 1×1×f×f |
| ``inference/subnet{n}/weights_3``, ``biases_3`` | ``subnets.{n-1}.blocks.0.conv3`` | 3×3×f×f |
| ``inference/subnet{n}/weights_4``, ``biases_4`` | ``subnets.{n-1}.tail`` | 1×1×f×3 |

The number of levels and each width ``f`` are read from the checkpoint, so differently sized official-style
models convert too. Command line::

    python -m lpnet.convert source=weights/light_model output=light.pt [overwrite=true]
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lpnet.checkpoint import is_gauge, load_model, read_checkpoint, read_gauge, save_checkpoint, save_gauge
from lpnet.cli import Outcome, command
from lpnet.config import ConvertCommandConfig
from lpnet.models.gauge import RainGauge
from lpnet.models.lpnet import LPNet

TRAINING_SUFFIX = ".ckpt"  # Lightning's checkpoints (LitLPNet), as the trainer writes them
TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5  # 1 byte compression type + 4 bytes masked crc32c
SCOPE = "inference"
# TF DataType enum → little-endian numpy dtype (the ones a float model can hold).
TF_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 9: "<i8", 19: "<f2"}
# conv index inside a TF subnet → (LPNet module path, kernel size, "in", "out") with f = subnet width.
CONV_LAYOUT = {
    0: ("head", 3, "c", "f"),
    1: ("blocks.0.conv1", 3, "f", "f"),
    2: ("blocks.0.conv2", 1, "f", "f"),
    3: ("blocks.0.conv3", 3, "f", "f"),
    4: ("tail", 1, "f", "c"),
}
_VARIABLE = re.compile(rf"^{SCOPE}/subnet(\d+)/(weights|biases)_(\d+)$")


class TFBundleError(ValueError):
    """A TensorFlow checkpoint that cannot be read or does not hold an official-style LPNet."""


# ---------------------------------------------------------------------------------------------- bundle


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as LevelDB and TF use it; pure Python, fine for the few KB of a small model."""
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _unmask_crc(masked: int) -> int:
    """Undo LevelDB's crc masking: ``masked = rotr15(crc) + 0xa282ead8``."""
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def _varint(buf: bytes, pos: int, where: str) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; returns ``(value, next_pos)``."""
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise TFBundleError(f"{where}: truncated or malformed varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes, where: str) -> list[tuple[int, int | bytes]]:
    """Decode a protobuf message into ``(field number, value)`` pairs (bytes when length-delimited)."""
    fields: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos, where)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, where)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos, where)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        else:
            raise TFBundleError(f"{where}: unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise TFBundleError(f"{where}: truncated protobuf message")
        fields.append((number, value))
    return fields


def _read_block(data: bytes, offset: int, size: int, index_path: Path) -> bytes:
    """The contents of the table block at ``offset`` (``size`` bytes), its trailer checked."""
    end = offset + size + BLOCK_TRAILER_SIZE
    if end > len(data):
        raise TFBundleError(f"{index_path}: not a tensor bundle index (block past the end of the file)")
    block, compression = data[offset : offset + size], data[offset + size]
    if compression != 0:
        raise TFBundleError(
            f"{index_path}: table block at offset {offset} is compressed (type {compression}); "
            "TF tensor bundles are written uncompressed and lpnet reads only those"
        )
    (masked,) = struct.unpack_from("<I", data, offset + size + 1)
    if crc32c(block + bytes([compression])) != _unmask_crc(masked):
        raise TFBundleError(f"{index_path}: checksum mismatch in the table block at offset {offset}")
    return block


def _block_entries(block: bytes, where: str) -> list[tuple[bytes, bytes]]:
    """The ``(key, value)`` entries of one table block (keys share prefixes with the previous key)."""
    if len(block) < 4:
        raise TFBundleError(f"{where}: table block too short")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise TFBundleError(f"{where}: corrupt table block (restart array larger than the block)")
    entries, key, pos = [], b"", 0
    while pos < limit:
        shared, pos = _varint(block, pos, where)
        unshared, pos = _varint(block, pos, where)
        value_len, pos = _varint(block, pos, where)
        if shared > len(key) or pos + unshared + value_len > limit:
            raise TFBundleError(f"{where}: corrupt table block entry")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def _read_table(index_path: Path) -> dict[str, bytes]:
    """Every ``key → value`` of a LevelDB-style table file."""
    data = index_path.read_bytes()
    not_bundle = f"{index_path}: not a TensorFlow tensor bundle index"
    if len(data) < FOOTER_SIZE:
        raise TFBundleError(f"{not_bundle} (only {len(data)} bytes; the footer alone is {FOOTER_SIZE})")
    footer = data[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)
    if magic != TABLE_MAGIC:
        raise TFBundleError(f"{not_bundle} (bad magic number {magic:#018x}; truncated or another format)")
    _, pos = _varint(footer, 0, str(index_path))  # metaindex block (empty in bundles): offset, size
    _, pos = _varint(footer, pos, str(index_path))
    index_offset, pos = _varint(footer, pos, str(index_path))
    index_size, _ = _varint(footer, pos, str(index_path))
    table: dict[str, bytes] = {}
    index_block = _read_block(data, index_offset, index_size, index_path)
    for _, handle in _block_entries(index_block, str(index_path)):
        offset, pos = _varint(handle, 0, str(index_path))
        size, _ = _varint(handle, pos, str(index_path))
        for key, value in _block_entries(_read_block(data, offset, size, index_path), str(index_path)):
            table[key.decode("utf-8")] = value
    return table


def _bundle_paths(prefix: str | os.PathLike) -> tuple[Path, str]:
    """``(index path, prefix)`` from either the prefix or the ``.index`` file itself."""
    text = os.fspath(prefix)
    if text.endswith(".index"):
        text = text[: -len(".index")]
    index_path = Path(text + ".index")
    if not index_path.is_file():
        raise FileNotFoundError(f"TF checkpoint index not found: {index_path}")
    return index_path, text


def read_tf_bundle(prefix: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the numeric tensors of a TF checkpoint (tensor bundle) into numpy, without TensorFlow.

    Float and integer tensors are read; others (strings such as TF2's object graph) are skipped.

    Args:
        prefix: the checkpoint prefix (``.../light_model``) or its ``.index`` file.

    Returns:
        ``{variable name: array}`` in TF's layout (HWIO for convolution kernels), checksums verified.

    Raises:
        FileNotFoundError: the ``.index`` or a ``.data-*`` file is missing (the message names it).
        TFBundleError: not a tensor bundle, truncated, corrupt, or holding tensors this reader cannot decode.
    """
    index_path, text = _bundle_paths(prefix)
    table = _read_table(index_path)
    num_shards = 1
    if "" in table:  # BundleHeaderProto fields: num_shards = 1, endianness = 2 (0 = little)
        header = dict(_proto_fields(table.pop(""), f"{index_path} (bundle header)"))
        num_shards = int(header.get(1, 1))
        if header.get(2, 0) != 0:
            raise TFBundleError(f"{index_path}: big-endian tensor bundles are not supported")
    shards: dict[int, bytes] = {}
    tensors: dict[str, np.ndarray] = {}
    for name, value in table.items():
        where = f"{index_path} (entry {name!r})"
        entry = dict(_proto_fields(value, where))
        dtype = TF_DTYPES.get(int(entry.get(1, 0)))
        if dtype is None:  # strings (TF2's object graph), resources, ...: no weights there
            continue
        if 7 in entry:
            raise TFBundleError(f"{where}: partitioned (sliced) variables are not supported")
        shape = [int(dict(_proto_fields(d, where)).get(1, 0)) for d in _dims(entry.get(2, b""), where)]
        shard_id, offset, size = (int(entry.get(k, 0)) for k in (3, 4, 5))
        data_path = Path(f"{text}.data-{shard_id:05d}-of-{num_shards:05d}")
        if shard_id not in shards:
            if not data_path.is_file():
                raise FileNotFoundError(f"TF checkpoint data file not found: {data_path}")
            shards[shard_id] = data_path.read_bytes()
        raw = shards[shard_id][offset : offset + size]
        if len(raw) != size:
            raise TFBundleError(f"{data_path}: truncated ({name!r} needs bytes {offset}..{offset + size})")
        if 6 in entry and crc32c(raw) != _unmask_crc(int(entry[6])):
            raise TFBundleError(f"{data_path}: checksum mismatch for {name!r}")
        array = np.frombuffer(raw, dtype=dtype)
        if array.size != int(np.prod(shape)):
            raise TFBundleError(f"{where}: {size} bytes do not hold a tensor of shape {shape}")
        tensors[name] = array.reshape(shape).astype(dtype[1:])
    return tensors


def _dims(shape_proto: bytes, where: str) -> list[bytes]:
    """The ``dim`` sub-messages (field 2) of a ``TensorShapeProto``."""
    return [d for number, d in _proto_fields(shape_proto, where) if number == 2]


# ---------------------------------------------------------------------------------------------- mapping


def _subnet_widths(tensors: dict[str, np.ndarray], source: str) -> list[int]:
    """Widths of ``subnet1..N`` read from their first kernels; checks that the subnets are numbered 1..N."""
    numbers = sorted({int(m.group(1)) for m in map(_VARIABLE.match, tensors) if m})
    if not numbers:
        found = sorted(tensors)[:8]
        raise TFBundleError(f"{source}: no '{SCOPE}/subnetN/weights_K' variables; found {found}")
    if numbers != list(range(1, numbers[-1] + 1)):
        raise TFBundleError(f"{source}: subnets must be numbered 1..N, found subnet{numbers}")
    widths = []
    for n in numbers:
        kernel = tensors.get(f"{SCOPE}/subnet{n}/weights_0")
        if kernel is None or kernel.ndim != 4:
            raise TFBundleError(
                f"{source}: cannot read the width of subnet{n} from '{SCOPE}/subnet{n}/weights_0'"
            )
        widths.append(int(kernel.shape[3]))
    return widths


def convert_tf_checkpoint(prefix: str | os.PathLike) -> LPNet:
    """Build the LPNet an official TF checkpoint describes and load its weights.

    Args:
        prefix: the checkpoint prefix (``.../light_model``) or its ``.index`` file.

    Returns:
        An :class:`LPNet` in eval mode whose outputs match the TF graph's.

    Raises:
        FileNotFoundError: a checkpoint file is missing.
        TFBundleError: unreadable bundle, missing variables (all listed) or mis-shaped ones (expected, found).
    """
    tensors = read_tf_bundle(prefix)
    source = str(_bundle_paths(prefix)[0])
    widths = _subnet_widths(tensors, source)
    net = LPNet(num_levels=len(widths), widths=widths)
    channels = net.channels
    state, missing, misshaped, used = {}, [], [], set()
    for level, width in enumerate(widths):
        sizes = {"c": channels, "f": width}
        for k, (module, ksize, cin, cout) in CONV_LAYOUT.items():
            expected = {
                "weights": (ksize, ksize, sizes[cin], sizes[cout]),
                "biases": (sizes[cout],),
            }
            for kind, shape in expected.items():
                name = f"{SCOPE}/subnet{level + 1}/{kind}_{k}"
                if name not in tensors:
                    missing.append(name)
                    continue
                used.add(name)
                value = tensors[name]
                if value.shape != shape:
                    misshaped.append(f"{name}: expected {shape}, found {value.shape}")
                    continue
                if kind == "weights":
                    value = value.transpose(3, 2, 0, 1)  # HWIO → OIHW
                param = "weight" if kind == "weights" else "bias"
                state[f"subnets.{level}.{module}.{param}"] = torch.from_numpy(np.ascontiguousarray(value))
    unexpected = sorted(n for n in tensors if _VARIABLE.match(n) and n not in used)
    if missing or misshaped or unexpected:
        problems = []
        if missing:
            problems.append(f"missing variables: {', '.join(missing)}")
        if misshaped:
            problems.append(f"mis-shaped variables (HWIO): {'; '.join(misshaped)}")
        if unexpected:
            problems.append(f"unexpected variables (not in the official layout): {', '.join(unexpected)}")
        raise TFBundleError(f"{source}: not an official-style LPNet checkpoint; " + "; ".join(problems))
    net.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    return net.eval()


# ---------------------------------------------------------------------------------------------- CLI


def convert(
    source: str | os.PathLike, output: str | os.PathLike, overwrite: bool = ConvertCommandConfig.overwrite
) -> LPNet | RainGauge:
    """Convert the official TF checkpoint (or training checkpoint) ``source`` to lpnet's format at ``output``
    (a rain gauge's training checkpoint to a gauge file).

    Raises:
        FileExistsError: ``output`` exists and ``overwrite`` is false.
        IsADirectoryError: ``output`` is a folder.
        FileNotFoundError / TFBundleError / CheckpointError: ``source`` is missing or not a readable TF or
            training checkpoint.
    """
    output = Path(output)
    if output.is_dir():
        raise IsADirectoryError(
            f"output={output} is a folder; give the checkpoint file to write (e.g. {output}/heavy.pt)"
        )
    if output.exists() and not overwrite:
        raise FileExistsError(f"output={output} exists; pass overwrite=true to replace it")
    if Path(source).suffix == TRAINING_SUFFIX and is_gauge(source):
        config, state, meta = read_gauge(source)
        gauge = RainGauge(config)
        gauge.load_state_dict(state)
        save_gauge(output, gauge, {**meta, "source": Path(source).name})
        return gauge
    if Path(source).suffix == TRAINING_SUFFIX:
        net = load_model(source)
        # The file name and step, not the path: bundled weights must not carry a developer's folders.
        meta = {**read_checkpoint(source)[2], "source": Path(source).name}
    else:
        net = convert_tf_checkpoint(source)
        index_path, _ = _bundle_paths(source)
        meta = {"source": str(index_path.resolve()), "variables": 2 * len(CONV_LAYOUT) * net.num_levels}
    save_checkpoint(output, net, meta)
    return net


def run(cfg: Any) -> Outcome:
    """The command: ``python -m lpnet.convert source=TF_PREFIX output=FILE.pt [overwrite=true]``."""
    net = convert(cfg.source, cfg.output, overwrite=cfg.overwrite)
    params = sum(p.numel() for p in net.parameters())
    kind = "rain gauge" if isinstance(net, RainGauge) else "LPNet"
    return Outcome(
        f"lpnet convert: wrote {cfg.output}",
        [
            (
                "network",
                f"{kind} widths {net.config.widths}, {params:,} parameters",
            ),
            ("from", cfg.source),
        ],
    )


main = command("convert", run)

if __name__ == "__main__":
    main()
