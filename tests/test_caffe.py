"""The .caffemodel reader (convcore.models.caffe) on synthetic files written by a small protobuf
encoder below: V2 `layer` messages with BlobShape and V1 `layers` with legacy
num/channels/height/width, packed and non-packed floats, double_data, unknown fields of every
wire type (groups included) that must be skipped; the NIN conversion against an .npz of the
same weights (BGR -> RGB); errors for missing layers, wrong shapes and malformed or truncated
files."""
import numpy as np
import pytest

from convcore.models import caffe as C
from convcore.models.feature_nets import FEATURE_NETS, FeatureNet, feature_net
from conftest import BASE_SEED
from reference import rel_error

pytestmark = pytest.mark.usefixtures("one_thread_module")


# ---- a minimal protobuf encoder ---------------------------------------------------------------

def varint(n):
    n &= (1 << 64) - 1          # negative int32/int64: 64-bit two's complement, 10 bytes
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def f_varint(field, n):
    return key(field, 0) + varint(n)


def f_bytes(field, payload):
    return key(field, 2) + varint(len(payload)) + payload


def f_str(field, text):
    return f_bytes(field, text.encode())


def f_fixed32(field, raw):
    return key(field, 5) + raw


def f_fixed64(field, raw):
    return key(field, 1) + raw


def f_group(field, contents):
    return key(field, 3) + contents + key(field, 4)


def unpacked(field, values, dtype="<f4"):
    """One field per value (wire type 5 for float, 1 for double)."""
    values = np.asarray(values, dtype).reshape(-1)
    k = np.frombuffer(key(field, 5 if dtype == "<f4" else 1), np.uint8)
    rows = np.empty((values.size, k.size + values.itemsize), np.uint8)
    rows[:, :k.size] = k
    rows[:, k.size:] = values.view(np.uint8).reshape(values.size, -1)
    return rows.tobytes()


def packed(field, values, dtype="<f4"):
    return f_bytes(field, np.asarray(values, dtype).tobytes())


# unknown fields of each wire type, nested groups included: every reader must skip them
JUNK_FIELDS = [f_varint(900, 2**63 + 5), f_fixed64(901, b"\x01" * 8), f_fixed32(902, b"\xff" * 4),
               f_bytes(903, b"\x00\x80\xff"),
               f_group(904, f_varint(1, 7) + f_group(2, f_str(3, "x")) + f_fixed32(4, b"abcd"))]
JUNK = b"".join(JUNK_FIELDS)


def blob_v2(array, mode="packed", dims_packed=True, dtype="<f4"):
    """BlobProto with a BlobShape. mode: 'packed', 'unpacked' or 'mixed' (a packed chunk, a
    non-packed run and another packed chunk); dtype '<f8' writes double_data."""
    array = np.asarray(array)
    shape = (packed_varints(1, array.shape) if dims_packed
             else b"".join(f_varint(1, d) for d in array.shape))
    field = 5 if dtype == "<f4" else 8
    flat = array.reshape(-1)
    if mode == "packed":
        data = packed(field, flat, dtype)
    elif mode == "unpacked":
        data = unpacked(field, flat, dtype)
    else:
        third = max(1, flat.size // 3)
        data = (packed(field, flat[:third], dtype) + unpacked(field, flat[third:2 * third], dtype)
                + packed(field, flat[2 * third:], dtype))
    # diff (6) is ignored; the shape comes after the data here (any order is legal)
    return data + packed(6, np.ones(3)) + JUNK + f_bytes(7, shape)


def packed_varints(field, values):
    return f_bytes(field, b"".join(varint(v) for v in values))


def blob_v1(array, mode="packed"):
    """BlobProto with legacy num/channels/height/width (shape padded to 4-D in front)."""
    array = np.asarray(array, np.float32)
    dims = (1,) * (4 - array.ndim) + array.shape
    head = b"".join(f_varint(f, d) for f, d in zip((1, 2, 3, 4), dims))
    data = packed(5, array) if mode == "packed" else unpacked(5, array)
    return head + data + f_fixed32(900, b"\0\0\0\0")


def layer_v2(name, kind, blobs):
    return (f_str(1, name) + f_str(2, kind) + f_str(3, "bottom") + f_str(4, "top")
            + f_bytes(6, f_fixed32(3, b"\0\0\x80?")) + f_varint(10, 1) + JUNK
            + b"".join(f_bytes(7, b) for b in blobs) + f_bytes(106, f_varint(1, 4)))


V1_CONVOLUTION, V1_RELU, V1_INNER_PRODUCT, V1_DATA = 4, 18, 14, 5


def layer_v1(name, kind, blobs):
    # blobs before the name: field order is free
    return (f_str(2, "bottom") + f_str(3, "top") + b"".join(f_bytes(6, b) for b in blobs)
            + f_str(4, name) + f_varint(5, kind) + f_fixed32(7, b"\0\0\x80?") + JUNK
            + f_bytes(10, f_varint(1, 4)))


def net_file(layers):
    """NetParameter bytes and the offsets at which a top-level field ends (a file cut there
    is a valid, shorter message)."""
    fields = [f_str(1, "synthetic"), f_str(3, "data")] + [f_varint(4, d) for d in (1, 3, 9, 9)]
    fields += layers + JUNK_FIELDS
    ends = np.cumsum([0] + [len(f) for f in fields]).tolist()
    return b"".join(fields), ends


# ---- reading ----------------------------------------------------------------------------------

def _small_weights(rng):
    return {"conv1": [rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
                      rng.standard_normal(4).astype(np.float32)],
            "fc": [rng.standard_normal((5, 6)).astype(np.float32),
                   rng.standard_normal(5).astype(np.float32)]}


def _assert_same(got, want):
    assert sorted(got) == sorted(want)
    for name in want:
        assert len(got[name]) == len(want[name]), name
        for g, w in zip(got[name], want[name]):
            assert g.dtype == w.dtype and g.shape == w.shape, (name, g.shape, w.shape)
            assert np.array_equal(g, w), name


@pytest.mark.parametrize("mode", ["packed", "unpacked", "mixed"])
def test_read_v2_layers(rng, tmp_path, mode):
    w = _small_weights(rng)
    layers = [f_bytes(100, layer_v2("data", "Input", [])),
              f_bytes(100, layer_v2("conv1", "Convolution",
                                    [blob_v2(w["conv1"][0], mode, dims_packed=True),
                                     blob_v2(w["conv1"][1], mode, dims_packed=False)])),
              f_bytes(100, layer_v2("relu1", "ReLU", [])),
              f_bytes(100, layer_v2("fc", "InnerProduct",
                                    [blob_v2(b, mode) for b in w["fc"]]))]
    data, _ = net_file(layers)
    (tmp_path / "net.caffemodel").write_bytes(data)
    want = {"data": [], "relu1": [], **w}
    _assert_same(C.read_caffemodel(str(tmp_path / "net.caffemodel")), want)
    _assert_same(C.read_caffemodel(data), want)
    types = [(layer.name, layer.type) for layer in C.read_caffemodel_layers(data)]
    assert types == [("data", "Input"), ("conv1", "Convolution"), ("relu1", "ReLU"),
                     ("fc", "InnerProduct")]
    _assert_same(C.read_caffemodel(data, layers=["fc"]), {"fc": w["fc"]})
    _assert_same(C.read_caffemodel(data, layers="conv1"), {"conv1": w["conv1"]})


@pytest.mark.parametrize("mode", ["packed", "unpacked"])
def test_read_v1_layers(rng, mode):
    w = _small_weights(rng)
    layers = [f_bytes(2, layer_v1("data", V1_DATA, [])),
              f_bytes(2, layer_v1("conv1", V1_CONVOLUTION, [blob_v1(a, mode) for a in w["conv1"]])),
              f_bytes(2, layer_v1("relu1", V1_RELU, [])),
              f_bytes(2, layer_v1("fc", V1_INNER_PRODUCT, [blob_v1(a, mode) for a in w["fc"]]))]
    data, _ = net_file(layers)
    # legacy blobs are 4-D: a bias (1, 1, 1, K), an inner product's weights (1, 1, out, in)
    want = {"data": [], "relu1": [],
            "conv1": [w["conv1"][0], w["conv1"][1].reshape(1, 1, 1, 4)],
            "fc": [w["fc"][0].reshape(1, 1, 5, 6), w["fc"][1].reshape(1, 1, 1, 5)]}
    _assert_same(C.read_caffemodel(data), want)
    assert [layer.type for layer in C.read_caffemodel_layers(data)] == \
        ["Data", "Convolution", "ReLU", "InnerProduct"]


def test_read_double_data_and_oldest_v0_layers(rng):
    w = rng.standard_normal((2, 3, 1, 1))
    b = rng.standard_normal(2)
    v0 = f_str(1, "conv0") + f_str(2, "conv") + f_bytes(50, blob_v2(w, dtype="<f8")) \
        + f_bytes(50, blob_v2(b, "unpacked", dtype="<f8")) + f_varint(3, 2)
    data, _ = net_file([f_bytes(2, f_bytes(1, v0))])
    got = C.read_caffemodel(data)
    _assert_same(got, {"conv0": [w, b]})
    assert got["conv0"][0].dtype == np.float64


def test_truncated_files_raise_valueerror_or_read_a_shorter_net(rng):
    """Every prefix of a file: a ValueError, except at the end of a top-level field, where it
    is a valid NetParameter with fewer fields."""
    w = {"c": [rng.standard_normal((2, 2, 1, 1)).astype(np.float32),
               rng.standard_normal(2).astype(np.float32)]}
    layers = [f_bytes(100, layer_v2("c", "Convolution", [blob_v2(a, "mixed") for a in w["c"]])),
              f_bytes(2, layer_v1("c1", V1_CONVOLUTION, [blob_v1(a, "unpacked")
                                                         for a in w["c"]]))]
    data, ends = net_file(layers)
    for cut in range(len(data)):
        if cut in ends:
            C.read_caffemodel(data[:cut])
        else:
            with pytest.raises(ValueError, match="read_caffemodel"):
                C.read_caffemodel(data[:cut])


@pytest.mark.parametrize("data, message", [
    (key(3, 7) + b"\0", "wire type 7"),
    (key(3, 6), "wire type 6"),
    (b"\x00\x01", "field number 0"),
    (key(2**29, 0) + b"\x00", "field number 536870912"),
    (key(5, 4), "without its start"),
    (key(5, 3) + f_varint(1, 1) + key(6, 4), "does not match"),
    (key(5, 3) + f_varint(1, 1), "never closed"),
    (key(5, 0) + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
    (f_bytes(100, f_str(1, "L") + f_bytes(7, f_bytes(5, b"\0" * 6))), "whole number"),
    (f_bytes(100, f_str(1, "L") + f_bytes(7, b"".join(f_varint(f, d) for f, d in
                                                      zip((1, 2, 3, 4), (1, 1, 1, 3)))
                                          + packed(5, np.zeros(2)))), "needs 3 values"),
    (f_bytes(100, f_str(1, "L") + f_bytes(7, f_bytes(7, packed_varints(1, [-2, 3]))
                                          + packed(5, np.zeros(6)))), "negative"),
    (f_bytes(100, f_varint(1, 3)), "wire type 0"),
    (f_bytes(100, f_str(1, "L") + f_bytes(7, b"")) * 2, "twice"),
])
def test_malformed_input(data, message):
    with pytest.raises(ValueError, match=message):
        C.read_caffemodel(data)


def test_not_a_caffemodel(tmp_path):
    np.savez(tmp_path / "w.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="read_caffemodel"):
        C.read_caffemodel(tmp_path / "w.npz")


# ---- conversion -------------------------------------------------------------------------------

NIN_CAFFE = ["conv1", "cccp1", "cccp2", "conv2", "cccp3", "cccp4", "conv3", "cccp5", "cccp6",
             "conv4-1024", "cccp7-1024", "cccp8-1024"]


@pytest.fixture(scope="module")
def nin_weights():
    """Caffe-named NIN weights from a seeded generator (the trailing 1x1 layers small: the
    feature net never reaches them)."""
    rng = np.random.default_rng(BASE_SEED + 10)
    spec = {op["name"]: op for op in FEATURE_NETS["nin"][0]() if op["op"] == "conv"}
    out = {}
    for name in NIN_CAFFE:
        op = spec.get(name.replace("-", "_"))
        shape = ((op["c_out"], op["c_in"], op["k"], op["k"]) if op
                 else (8, 1024 if name == "cccp7-1024" else 8, 1, 1))
        fan_in = np.prod(shape[1:])
        out[name] = [(rng.standard_normal(shape) * np.sqrt(2 / fan_in)).astype(np.float32),
                     (0.1 * rng.standard_normal(shape[0])).astype(np.float32)]
    return out


def nin_file(weights, form="v1", skip=(), replace=None):
    layers = [f_bytes(2, layer_v1("data", V1_DATA, []))] if form == "v1" else []
    for name, (W, b) in weights.items():
        if name in skip:
            continue
        if replace and name in replace:
            W = replace[name]
        if form == "v1":        # the original NIN and VGG files are V1 `layers`
            layers += [f_bytes(2, layer_v1(name, V1_CONVOLUTION, [blob_v1(W), blob_v1(b)])),
                       f_bytes(2, layer_v1("relu_" + name, V1_RELU, []))]
        else:
            layers.append(f_bytes(100, layer_v2(name, "Convolution",
                                                [blob_v2(W), blob_v2(b)])))
    return net_file(layers)[0]


@pytest.mark.parametrize("form", ["v1", "v2"])
def test_convert_nin_matches_npz_of_same_weights(rng, tmp_path, nin_weights, form):
    path = tmp_path / "nin.caffemodel"
    path.write_bytes(nin_file(nin_weights, form))
    C.convert_caffemodel(path, tmp_path / "nin.npz", "nin")
    with np.load(tmp_path / "nin.npz") as z:
        saved = {k: z[k] for k in z.files}
    assert str(saved.pop("preprocess")) == "caffe"
    ours = {n.replace("-", "_"): wb for n, wb in nin_weights.items()
            if n not in ("cccp7-1024", "cccp8-1024")}
    assert sorted(saved) == sorted(f"{n}/{p}" for n in ours for p in "Wb")
    for name, (W, b) in ours.items():
        want = W[:, ::-1] if name == "conv1" else W      # BGR -> RGB on the first conv only
        assert np.array_equal(saved[name + "/W"], want) and saved[name + "/W"].dtype == np.float32
        assert np.array_equal(saved[name + "/b"], b)

    # the same net from the .npz, from the .caffemodel directly, and from an .npz written by
    # hand with the flip: identical features
    np.savez(tmp_path / "hand.npz", preprocess=np.array("caffe"),
             **{f"{n}/W": (W[:, ::-1] if n == "conv1" else W) for n, (W, _) in ours.items()},
             **{f"{n}/b": b for n, (_, b) in ours.items()})
    nets = [feature_net("nin", weights=str(tmp_path / f)) for f in
            ("nin.npz", "nin.caffemodel", "hand.npz")]
    pixels = rng.uniform(0, 255, (1, 3, 67, 71)).astype(np.float32)
    taps = ["relu1", "relu2", "relu3", "relu4"]
    feats = [net.forward(net.to_input(pixels), taps) for net in nets]
    for f in feats[1:]:
        for t in taps:
            assert np.array_equal(f[t], feats[0][t]), t

    # what the flip means: the converted net on RGB = Caffe's weights on the same pixels as BGR
    raw = {f"{n}/W": W for n, (W, _) in ours.items()}
    raw.update({f"{n}/b": b for n, (_, b) in ours.items()})
    caffe_net = FeatureNet("nin", nets[0].spec, raw, {}, {"relu4": 1.0}, nets[0].preprocess)
    bgr = np.ascontiguousarray(pixels[:, ::-1])
    theirs = caffe_net.forward(caffe_net.to_input(bgr), taps)
    for t in taps:
        assert rel_error(feats[0][t], theirs[t]) < 1e-5, t


def test_convert_errors(tmp_path, nin_weights):
    path = tmp_path / "nin.caffemodel"
    path.write_bytes(nin_file(nin_weights, skip=("cccp5", "conv4-1024")))
    with pytest.raises(ValueError, match="lacks layer.*cccp5, conv4-1024.*nin"):
        C.convert_caffemodel(path, tmp_path / "x.npz", "nin")
    with pytest.raises(ValueError, match="cccp5"):
        feature_net("nin", weights=str(path))     # the in-memory conversion
    assert not (tmp_path / "x.npz").exists()

    bad = np.zeros((256, 96, 3, 3), np.float32)
    path.write_bytes(nin_file(nin_weights, replace={"conv2": bad}))
    with pytest.raises(ValueError, match=r"conv2 weights have shape \(256, 96, 3, 3\), "
                                         r"nin expects \(256, 96, 5, 5\)"):
        C.convert_caffemodel(path, tmp_path / "x.npz", "nin")
    path.write_bytes(nin_file(nin_weights, replace={"conv4-1024": np.zeros((1024, 384, 1, 1))}))
    with pytest.raises(ValueError, match=r"conv4-1024 \(our conv4_1024\) weights have shape "
                                         r"\(1024, 384, 1, 1\)"):
        C.convert_caffemodel(path, tmp_path / "x.npz", "nin")

    whole = nin_file(nin_weights)
    for cut in (5, len(whole) // 2, len(whole) - 1):
        path.write_bytes(whole[:cut])
        with pytest.raises(ValueError, match="truncated"):
            C.convert_caffemodel(path, tmp_path / "x.npz", "nin")
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="has 0 layers"):
        C.convert_caffemodel(path, tmp_path / "x.npz", "nin")
    with pytest.raises(ValueError, match="arch"):
        C.convert_caffemodel(path, tmp_path / "x.npz", "random")


def test_vgg_layer_names():
    names16, names19 = C.caffe_layer_names("vgg16"), C.caffe_layer_names("vgg19")
    assert list(names16) == [f"conv{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3))
                             for i in range(1, n + 1)]
    assert list(names19)[-1] == "conv5_1" and len(names19) == 13
    assert all(k == v for k, v in names19.items())
    assert C.caffe_layer_names("nin")["conv4_1024"] == "conv4-1024"


def test_command_line_converts(tmp_path, nin_weights, capsys):
    from convcore.style import main
    (tmp_path / "nin.caffemodel").write_bytes(nin_file(nin_weights))
    assert main(["--net", "nin", "--convert-caffe", str(tmp_path / "nin.caffemodel"),
                 "--weights", str(tmp_path / "nin.npz")]) == 0
    assert "wrote" in capsys.readouterr().out
    net = feature_net("nin", weights=str(tmp_path / "nin.npz"))
    assert net.preprocess == ("caffe", (120.0,) * 3)
    assert np.array_equal(net.params["conv1/W"], nin_weights["conv1"][0][:, ::-1])
