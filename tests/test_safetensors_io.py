"""coconut.safetensors_io against the reference `safetensors` package, both directions."""
import json

import numpy as np
import pytest

safetensors = pytest.importorskip("safetensors")
import safetensors.numpy  # noqa: E402

from coconut.safetensors_io import load_safetensors, save_safetensors  # noqa: E402


def sample_tensors():
    """Every savable dtype, with 0-d, empty, odd-sized and non-contiguous arrays and the
    float values whose bits are easiest to lose (NaN payloads, -0, subnormals, inf)."""
    generator = np.random.default_rng(0)
    special = np.array([np.nan, -0.0, np.inf, -np.inf, 1e-310, 5e-324, 1.5], np.float64)
    nan_payload = np.array([0x7FC00001, 0xFFC12345], np.uint32).view(np.float32)
    return {
        "wte.weight": generator.standard_normal((7, 5)).astype(np.float32),
        "transposed": generator.standard_normal((4, 3)).astype(np.float32).T,
        "special_f64": special,
        "special_f32": np.concatenate([special.astype(np.float32), nan_payload]),
        "special_f16": np.array([np.nan, -0.0, np.inf, 6e-8, 65504], np.float16),
        "scalar": np.array(2.5, np.float32),
        "empty": np.zeros((0, 3), np.float32),
        "step": np.array(123456789012, np.int64),
        "ids": generator.integers(-2**31, 2**31, size=9, dtype=np.int32),
        "i16": np.array([-32768, 32767], np.int16),
        "i8": np.array([-128, 0, 127], np.int8),
        "u64": np.array([2**64 - 1], np.uint64),
        "u32": np.array([2**32 - 1, 0], np.uint32),
        "u16": np.array([65535], np.uint16),
        "bytes": np.arange(3, dtype=np.uint8),
        "mask": np.array([[True, False, True]]),
    }


def contiguous_samples():
    """The samples for the reference writer, which writes a transposed array's memory
    in Fortran order under its C shape (safetensors 0.8), so gets only C-order arrays."""
    return {name: np.asarray(array, order="C") for name, array in sample_tensors().items()}


def assert_bitwise_equal(actual, expected):
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    assert actual.tobytes() == np.ascontiguousarray(expected).tobytes()


def test_our_files_load_in_safetensors(tmp_path):
    tensors = sample_tensors()
    path = tmp_path / "ours.safetensors"
    save_safetensors(path, tensors, {"format": "np", "step": "12"})
    loaded = safetensors.numpy.load_file(str(path))
    assert loaded.keys() == tensors.keys()
    for name, array in tensors.items():
        assert_bitwise_equal(loaded[name], array)
    with safetensors.safe_open(str(path), framework="np") as f:
        assert f.metadata() == {"format": "np", "step": "12"}


def test_safetensors_files_load_in_ours(tmp_path):
    tensors = contiguous_samples()
    path = tmp_path / "reference.safetensors"
    safetensors.numpy.save_file(tensors, str(path), metadata={"epoch": "3"})
    loaded, metadata = load_safetensors(path)
    assert metadata == {"epoch": "3"}
    assert loaded.keys() == tensors.keys()
    for name, array in tensors.items():
        assert_bitwise_equal(loaded[name], array)
    loaded["wte.weight"][0, 0] = 7.0  # the arrays are ordinary writable arrays
    assert loaded["wte.weight"][0, 0] == 7.0


@pytest.mark.parametrize("metadata", [None, {"format": "pt"}])
def test_files_are_byte_identical_to_the_reference_writer(tmp_path, metadata):
    tensors = contiguous_samples()
    safetensors.numpy.save_file(tensors, str(tmp_path / "reference"), metadata=metadata)
    save_safetensors(tmp_path / "ours", tensors, metadata)
    ours = (tmp_path / "ours").read_bytes()
    assert ours == (tmp_path / "reference").read_bytes()
    header_length = int.from_bytes(ours[:8], "little")
    assert header_length % 8 == 0 and ours[8 + header_length - 1:8 + header_length] in b" }"


def test_bf16_from_torch_loads_as_float32(tmp_path):
    torch = pytest.importorskip("torch")
    import safetensors.torch

    values = torch.tensor([0.0, -0.0, 1.0, -2.5, 3.14159, 1e-39, 3e38, float("inf"),
                           float("-inf"), float("nan")]).to(torch.bfloat16)
    weights = torch.randn(6, 4).to(torch.bfloat16)
    path = tmp_path / "bf16.safetensors"
    safetensors.torch.save_file({"values": values, "weights": weights,
                                 "f16": weights.to(torch.float16)}, str(path))
    loaded, metadata = load_safetensors(path)
    assert metadata == {}
    for name, tensor in (("values", values), ("weights", weights)):
        raw = tensor.view(torch.int16).numpy().view(np.uint16).astype(np.uint32) << 16
        assert loaded[name].dtype == np.float32
        assert loaded[name].shape == tuple(tensor.shape)
        assert loaded[name].view(np.uint32).tobytes() == raw.tobytes()
        np.testing.assert_array_equal(loaded[name], tensor.float().numpy())
    assert_bitwise_equal(loaded["f16"], weights.to(torch.float16).numpy())


def test_large_tensor_round_trip(tmp_path):
    tensor = np.random.default_rng(1).standard_normal((1024, 768)).astype(np.float32)
    save_safetensors(tmp_path / "big", {"h.0.mlp.c_fc.weight": tensor})
    loaded, _ = load_safetensors(tmp_path / "big")
    assert_bitwise_equal(loaded["h.0.mlp.c_fc.weight"], tensor)


def write_raw(path, header, data=b"", header_length=None):
    """A file with any header (object, or raw bytes) and data, for malformed cases."""
    header_bytes = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = len(header_bytes) if header_length is None else header_length
    path.write_bytes(length.to_bytes(8, "little") + header_bytes + data)
    return path


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


MALFORMED = {
    # name: (header, data, header_length override, message pattern)
    "short_file": (None, None, None, r"too short"),
    "header_beyond_file": ({"a": entry("F32", [1], 0, 4)}, b"\0" * 4, 10_000,
                           r"header length 10000 .* beyond"),
    "bad_json": (b'{"a": {"dtype": "F32",', b"", None, r"not valid JSON \(byte"),
    "not_utf8": (b'{"\xff": 1}', b"", None, r"not UTF-8"),
    "header_is_list": ([1, 2], b"", None, r"not an object"),
    "unknown_dtype": ({"a": entry("F99", [1], 0, 4)}, b"\0" * 4, None,
                      r"tensor 'a': unknown or unsupported dtype 'F99'"),
    "missing_field": ({"a": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, None,
                      r"tensor 'a': header entry lacks \['data_offsets'\]"),
    "negative_shape": ({"a": entry("F32", [-1], 0, 4)}, b"\0" * 4, None,
                       r"tensor 'a': shape \[-1\]"),
    "reversed_offsets": ({"a": entry("U8", [0], 4, 0)}, b"\0" * 4, None,
                         r"tensor 'a': data_offsets \[4, 0\]"),
    "size_mismatch": ({"a": entry("F32", [2, 3], 0, 20)}, b"\0" * 20, None,
                      r"tensor 'a': shape \[2, 3\] of F32 needs 24 bytes.*span 20"),
    "outside_data": ({"a": entry("F32", [1], 0, 4), "b": entry("F32", [2], 4, 12)},
                     b"\0" * 8, None, r"tensor 'b' data_offsets \[4, 12\] reach beyond"),
    "overlap": ({"a": entry("F32", [2], 0, 8), "b": entry("F32", [1], 4, 8)},
                b"\0" * 8, None, r"tensor 'b' data_offsets \[4, 8\] overlap tensor 'a'"),
    "gap": ({"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 8, 12)},
            b"\0" * 12, None, r"gap of 4 unused bytes before tensor 'b'"),
    "trailing_bytes": ({"a": entry("F32", [1], 0, 4)}, b"\0" * 6, None,
                       r"2 bytes after the last tensor"),
    "bad_metadata": ({"__metadata__": {"k": 1}, "a": entry("U8", [1], 0, 1)}, b"\0", None,
                     r"__metadata__ must map strings to strings"),
    "bool_byte": ({"m": entry("BOOL", [2], 0, 2)}, b"\x01\x02", None,
                  r"tensor 'm' \(BOOL.*other than 0 or 1"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_raise_naming_file_and_place(tmp_path, case):
    header, data, header_length, message = MALFORMED[case]
    path = tmp_path / f"{case}.safetensors"
    if header is None:
        path.write_bytes(b"\x01\x02\x03")
    else:
        write_raw(path, header, data, header_length)
    with pytest.raises(ValueError, match=message) as error:
        load_safetensors(path)
    assert str(path) in str(error.value)
    # Files we refuse for their structure, the reference refuses too.
    if case not in ("bool_byte", "unknown_dtype"):
        with pytest.raises(Exception):
            safetensors.numpy.load_file(str(path))


def test_save_rejects_what_it_cannot_write(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(ValueError, match=r"tensor 'c' has dtype complex64"):
        save_safetensors(path, {"c": np.zeros(2, np.complex64)})
    with pytest.raises(TypeError, match=r"tensor 'l' is a list"):
        save_safetensors(path, {"l": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"'__metadata__' cannot be a tensor name"):
        save_safetensors(path, {"__metadata__": np.zeros(1)})
    with pytest.raises(TypeError, match="metadata must map strings to strings"):
        save_safetensors(path, {"a": np.zeros(1)}, {"step": 3})
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_big_endian_arrays_are_saved_little_endian(tmp_path):
    values = np.array([1.5, -2.0, 3.25], dtype=">f4")
    save_safetensors(tmp_path / "be", {"v": values})
    loaded, _ = load_safetensors(tmp_path / "be")
    assert loaded["v"].dtype == np.dtype("<f4")
    np.testing.assert_array_equal(loaded["v"], values)
    assert safetensors.numpy.load_file(str(tmp_path / "be"))["v"].tolist() == [1.5, -2.0, 3.25]
