"""lpnet.convert: the TF tensor-bundle reader, the variable mapping, the CLI and their errors."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli

from lpnet import load_model, read_checkpoint
from lpnet.convert import TFBundleError, convert_tf_checkpoint, crc32c, main, read_tf_bundle

OFFICIAL_WIDTHS = [1, 2, 4, 8, 16]

# ------------------------------------------------------------------ a minimal tensor-bundle writer
# Written from the LevelDB table format and TF's tensor_bundle.proto, independently of the reader.


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes | int, wire: int) -> bytes:
    key = _varint(number << 3 | wire)
    if wire == 0:
        return key + _varint(payload)
    if wire == 5:
        return key + struct.pack("<I", payload)
    return key + _varint(len(payload)) + payload


def _mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _block(entries: list[tuple[bytes, bytes]], restart_interval: int = 2) -> bytes:
    out, restarts, previous = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_interval:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        else:
            restarts.append(len(out))
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        previous = key
    for r in restarts:
        out += struct.pack("<I", r)
    return bytes(out + struct.pack("<I", len(restarts)))


def _write_bundle(
    prefix: Path,
    tensors: dict[str, np.ndarray],
    entries_per_block: int = 7,
    compression: int = 0,
    raw_entries: dict[str, bytes] | None = None,
) -> None:
    """Write ``tensors`` as ``prefix.index`` + ``prefix.data-00000-of-00001`` (float32, one shard).

    ``raw_entries`` adds index entries whose ``BundleEntryProto`` bytes are given as they are.
    """
    data, entries = bytearray(), [(b"", _field(1, 1, 0) + _field(3, _field(1, 1, 0), 2))]
    entries += [(name.encode(), value) for name, value in (raw_entries or {}).items()]
    for name in sorted(tensors):
        raw = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        shape = b"".join(_field(2, _field(1, d, 0), 2) for d in tensors[name].shape)
        value = _field(1, 1, 0) + _field(2, shape, 2) + _field(4, len(data), 0) + _field(5, len(raw), 0)
        entries.append((name.encode(), value + _field(6, _mask(crc32c(raw)), 5)))
        data += raw
    entries.sort()
    table, index_entries = bytearray(), []
    for start in range(0, len(entries), entries_per_block):
        chunk = entries[start : start + entries_per_block]
        block = _block(chunk)
        handle = _varint(len(table)) + _varint(len(block))
        table += block + bytes([compression]) + struct.pack("<I", _mask(crc32c(block + bytes([compression]))))
        index_entries.append((chunk[-1][0], handle))
    index = _block(index_entries, restart_interval=1)
    index_handle = _varint(len(table)) + _varint(len(index))
    table += index + b"\0" + struct.pack("<I", _mask(crc32c(index + b"\0")))
    footer = (_varint(0) + _varint(0) + index_handle).ljust(40, b"\0") + struct.pack("<Q", 0xDB4775248B80FB57)
    Path(f"{prefix}.index").write_bytes(bytes(table) + footer)
    Path(f"{prefix}.data-00000-of-00001").write_bytes(bytes(data))


def _official_style(widths: list[int], seed: int = 0) -> dict[str, np.ndarray]:
    """Random TF variables (HWIO) in the official layout for subnets of the given widths."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for n, f in enumerate(widths, start=1):
        shapes = [(3, 3, 3, f), (3, 3, f, f), (1, 1, f, f), (3, 3, f, f), (1, 1, f, 3)]
        for k, shape in enumerate(shapes):
            tensors[f"inference/subnet{n}/weights_{k}"] = rng.standard_normal(shape).astype(np.float32)
            tensors[f"inference/subnet{n}/biases_{k}"] = rng.standard_normal(shape[-1]).astype(np.float32)
    return tensors


def _copy_official(official_dir: Path, dst: Path, name: str = "light_model") -> Path:
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(official_dir / "weights" / f"{name}{suffix}", dst / f"{name}{suffix}")
        (dst / f"{name}{suffix}").chmod(0o644)
    return dst / name


# ------------------------------------------------------------------ reader


def test_crc32c_known_vector():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720)
    assert crc32c(b"") == 0


def test_read_official_bundle(official_dir):
    tensors = read_tf_bundle(official_dir / "weights" / "light_model")
    expected = {
        f"inference/subnet{n}/{kind}_{k}"
        for n in range(1, 6)
        for kind in ("weights", "biases")
        for k in range(5)
    }
    assert set(tensors) == expected
    assert sum(t.size for t in tensors.values()) == 7548
    assert all(t.dtype == np.float32 for t in tensors.values())
    assert tensors["inference/subnet5/weights_0"].shape == (3, 3, 3, 16)
    assert tensors["inference/subnet3/weights_2"].shape == (1, 1, 4, 4)
    assert tensors["inference/subnet1/weights_4"].shape == (1, 1, 1, 3)
    # every value read exactly once: the data file is the concatenation of the tensors
    data = (official_dir / "weights" / "light_model.data-00000-of-00001").read_bytes()
    assert sorted(np.concatenate([t.ravel() for t in tensors.values()]).tolist()) == sorted(
        np.frombuffer(data, "<f4").tolist()
    )


def test_index_path_and_prefix_agree(official_dir):
    a = read_tf_bundle(official_dir / "weights" / "heavy_model")
    b = read_tf_bundle(str(official_dir / "weights" / "heavy_model.index"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_synthetic_bundle_round_trip(tmp_path):
    tensors = _official_style([2, 3])
    _write_bundle(tmp_path / "model", tensors, entries_per_block=3)
    read = read_tf_bundle(tmp_path / "model")
    assert read.keys() == tensors.keys()
    for name, value in tensors.items():
        np.testing.assert_array_equal(read[name], value)


def test_non_numeric_tensors_are_skipped(tmp_path):
    tensors = _official_style([1])
    string_entry = _field(1, 7, 0) + _field(2, b"", 2) + _field(4, 0, 0) + _field(5, 3, 0)  # DT_STRING
    _write_bundle(tmp_path / "tf2", tensors, raw_entries={"_CHECKPOINTABLE_OBJECT_GRAPH": string_entry})
    assert read_tf_bundle(tmp_path / "tf2").keys() == tensors.keys()


# ------------------------------------------------------------------ mapping


def test_hwio_to_oihw_mapping(tmp_path):
    tensors = _official_style([2, 3, 5])
    _write_bundle(tmp_path / "model", tensors)
    net = convert_tf_checkpoint(tmp_path / "model")
    assert net.widths == [2, 3, 5] and net.num_levels == 3
    state = net.state_dict()
    # spot-check single elements: torch weight[o, i, h, w] is TF kernel[h, w, i, o]
    tf = tensors["inference/subnet3/weights_1"]
    assert state["subnets.2.blocks.0.conv1.weight"][4, 1, 0, 2].item() == tf[0, 2, 1, 4]
    tf = tensors["inference/subnet1/weights_0"]
    assert state["subnets.0.head.weight"][1, 2, 2, 0].item() == tf[2, 0, 2, 1]
    assert (
        state["subnets.1.tail.weight"][2, 0, 0, 0].item()
        == tensors["inference/subnet2/weights_4"][0, 0, 0, 2]
    )
    assert state["subnets.1.blocks.0.conv2.weight"].shape == (3, 3, 1, 1)
    np.testing.assert_array_equal(
        state["subnets.2.blocks.0.conv3.bias"], tensors["inference/subnet3/biases_3"]
    )


def test_convert_official(official_dir):
    net = convert_tf_checkpoint(official_dir / "weights" / "light_model")
    assert net.widths == OFFICIAL_WIDTHS
    assert sum(p.numel() for p in net.parameters()) == 7548
    assert not net.training


def test_missing_variables_are_listed(tmp_path):
    tensors = _official_style([2, 4])
    del tensors["inference/subnet2/biases_3"], tensors["inference/subnet1/weights_2"]
    _write_bundle(tmp_path / "model", tensors)
    with pytest.raises(TFBundleError, match="missing variables") as err:
        convert_tf_checkpoint(tmp_path / "model")
    assert "inference/subnet2/biases_3" in str(err.value) and "inference/subnet1/weights_2" in str(err.value)
    assert str(tmp_path / "model.index") in str(err.value)


def test_misshaped_variable_says_expected_and_found(tmp_path):
    tensors = _official_style([2, 4])
    tensors["inference/subnet2/weights_2"] = np.zeros((3, 3, 4, 4), np.float32)
    _write_bundle(tmp_path / "model", tensors)
    with pytest.raises(TFBundleError, match=r"weights_2: expected \(1, 1, 4, 4\), found \(3, 3, 4, 4\)"):
        convert_tf_checkpoint(tmp_path / "model")


def test_unexpected_and_foreign_variables(tmp_path):
    tensors = _official_style([2])
    tensors["global_step"] = np.zeros((), np.float32)  # not ours: ignored
    _write_bundle(tmp_path / "ok", tensors)
    assert convert_tf_checkpoint(tmp_path / "ok").widths == [2]
    tensors["inference/subnet1/weights_5"] = np.zeros((1, 1, 2, 2), np.float32)
    _write_bundle(tmp_path / "extra", tensors)
    with pytest.raises(TFBundleError, match=r"unexpected variables.*weights_5"):
        convert_tf_checkpoint(tmp_path / "extra")
    _write_bundle(tmp_path / "none", {"dense/kernel": np.zeros((2, 2), np.float32)})
    with pytest.raises(TFBundleError, match="no 'inference/subnetN/weights_K' variables"):
        convert_tf_checkpoint(tmp_path / "none")


# ------------------------------------------------------------------ file errors


def test_missing_files_are_named(tmp_path, official_dir):
    with pytest.raises(FileNotFoundError, match=r"nothing\.index"):
        read_tf_bundle(tmp_path / "nothing")
    prefix = _copy_official(official_dir, tmp_path)
    Path(f"{prefix}.data-00000-of-00001").unlink()
    with pytest.raises(FileNotFoundError, match=r"light_model\.data-00000-of-00001"):
        read_tf_bundle(prefix)


def test_random_bytes_are_not_a_bundle(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "junk.index").write_bytes(rng.bytes(500))
    with pytest.raises(TFBundleError, match=r"junk\.index: not a TensorFlow tensor bundle index \(bad magic"):
        read_tf_bundle(tmp_path / "junk")
    (tmp_path / "tiny.index").write_bytes(b"abc")
    with pytest.raises(TFBundleError, match=r"tiny\.index.*only 3 bytes"):
        read_tf_bundle(tmp_path / "tiny")


def test_truncated_index(tmp_path, official_dir):
    prefix = _copy_official(official_dir, tmp_path)
    index = Path(f"{prefix}.index")
    index.write_bytes(index.read_bytes()[:-100])
    with pytest.raises(TFBundleError, match=r"light_model\.index: not a TensorFlow tensor bundle"):
        read_tf_bundle(prefix)


def test_corruption_is_caught_by_checksums(tmp_path, official_dir):
    prefix = _copy_official(official_dir, tmp_path)
    index = Path(f"{prefix}.index")
    good = index.read_bytes()
    index.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])
    with pytest.raises(TFBundleError, match="checksum mismatch in the table block"):
        read_tf_bundle(prefix)
    index.write_bytes(good)
    data = Path(f"{prefix}.data-00000-of-00001")
    good_data = data.read_bytes()
    raw = bytearray(good_data)
    raw[1000] ^= 0x10
    data.write_bytes(bytes(raw))
    with pytest.raises(TFBundleError, match=r"data-00000-of-00001: checksum mismatch for 'inference/"):
        read_tf_bundle(prefix)
    data.write_bytes(good_data[:-8])
    with pytest.raises(TFBundleError, match=r"data-00000-of-00001: truncated"):
        read_tf_bundle(prefix)


def test_compressed_block_is_refused(tmp_path):
    _write_bundle(tmp_path / "snappy", _official_style([1]), compression=1)
    with pytest.raises(
        TFBundleError, match=r"snappy\.index: table block at offset 0 is compressed \(type 1\)"
    ):
        read_tf_bundle(tmp_path / "snappy")


# ------------------------------------------------------------------ CLI


def test_cli_round_trip(tmp_path, official_dir, capsys):
    dst = tmp_path / "heavy.pt"
    assert run_cli(main, f"source={official_dir / 'weights' / 'heavy_model.index'}", f"output={dst}") == 0
    out = capsys.readouterr().out
    assert str(dst) in out and "7,548 parameters" in out
    loaded = load_model(dst)
    reference = convert_tf_checkpoint(official_dir / "weights" / "heavy_model")
    for (name, a), (name_b, b) in zip(
        loaded.state_dict().items(), reference.state_dict().items(), strict=True
    ):
        assert name == name_b and torch.equal(a, b)
    _, _, meta = read_checkpoint(dst)
    assert meta["variables"] == 50 and meta["source"].endswith("heavy_model.index")
    x = torch.rand(1, 3, 23, 17)
    with torch.no_grad():
        assert torch.equal(loaded.derain(x), reference.derain(x))


def test_cli_refuses_to_overwrite(tmp_path, official_dir, capsys):
    dst = tmp_path / "light.pt"
    dst.write_bytes(b"keep me")
    src = str(official_dir / "weights" / "light_model")
    assert run_cli(main, f"source={src}", f"output={dst}") == 2
    assert dst.read_bytes() == b"keep me"
    assert "overwrite=true" in capsys.readouterr().err
    assert run_cli(main, f"source={src}", f"output={dst}", "overwrite=true") == 0
    assert load_model(dst).widths == OFFICIAL_WIDTHS


def test_cli_reports_errors(tmp_path, capsys):
    assert run_cli(main, f"source={tmp_path / 'missing'}", f"output={tmp_path / 'out.pt'}") == 2
    assert "missing.index" in capsys.readouterr().err
    assert not (tmp_path / "out.pt").exists()


def test_training_checkpoint_becomes_a_plain_one(tmp_path, capsys):
    """A LitLPNet .ckpt (what `make weights` converts): same network, kilobytes, step kept, no folders."""
    src = Path(__file__).parent / "fixtures" / "lightning_v1.ckpt"
    dst = tmp_path / "mine.pt"
    assert run_cli(main, f"source={src}", f"output={dst}") == 0
    reference = load_model(src)
    loaded = load_model(dst)
    for (name, a), (name_b, b) in zip(
        loaded.state_dict().items(), reference.state_dict().items(), strict=True
    ):
        assert name == name_b and torch.equal(a, b)
    _, _, meta = read_checkpoint(dst)
    assert meta["source"] == "lightning_v1.ckpt" and "global_step" in meta
    assert dst.stat().st_size < src.stat().st_size / 2  # the optimiser state stays behind
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    assert run_cli(main, f"source={broken}", f"output={tmp_path / 'x.pt'}") == 2
    assert "broken.ckpt" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()
