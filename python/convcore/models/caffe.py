"""Caffe `.caffemodel` weights without Caffe or protobuf: a small protobuf wire-format decoder
and a converter to feature_nets' `.npz` layout.

    layers = read_caffemodel("nin_imagenet.caffemodel")     # {layer name: [W, b, ...]}
    convert_caffemodel("VGG_ILSVRC_16_layers.caffemodel", "vgg16.npz", "vgg16")
    net = feature_net("nin", weights="nin_imagenet.caffemodel")   # converted in memory

A .caffemodel is one serialized protobuf `NetParameter` message. The wire format is a sequence
of fields, each a key varint (field number << 3 | wire type) and a value: wire type 0 a varint,
1 eight little-endian bytes, 2 a varint length and that many bytes (strings, embedded messages,
packed repeated scalars), 5 four little-endian bytes; 3 and 4 open and close a (deprecated)
group. Varints are little-endian groups of 7 bits, the high bit set on all but the last byte,
at most 10 bytes; negative int32/int64 values are 64-bit two's complement. Fields may come in
any order and repeat; unknown fields are skipped by their wire type. The messages read here,
and the fields used (everything else is skipped):

    NetParameter      layer = 100 (LayerParameter), layers = 2 (V1LayerParameter, legacy)
    LayerParameter    name = 1, type = 2 (string), blobs = 7
    V1LayerParameter  name = 4, type = 5 (enum LayerType), blobs = 6, layer = 1 (V0, older)
    V0LayerParameter  name = 1, type = 2 (string), blobs = 50
    BlobProto         shape = 7 (BlobShape), data = 5 (float), double_data = 8 (double),
                      legacy num = 1, channels = 2, height = 3, width = 4 (int32)
    BlobShape         dim = 1 (int64)

Repeated scalars (data, double_data, dim) may be packed (one length-delimited field) or not
(one field per value), and both forms may be mixed; the values are concatenated in order. A
blob's shape is BlobShape's dims when present, else the legacy (num, channels, height, width)
when any of them is present (missing ones are 0, as in the format), else (number of values,);
the number of values must equal the shape's product. A layer given twice is an error when
both copies carry blobs. Malformed input (truncated fields, lengths past the end, wire types
6/7, a field number 0 or over 2**29 - 1, an end-group without its start, varints over 10
bytes, negative dimensions) raises ValueError naming the byte offset; every step consumes at
least one byte, so no input makes the decoder loop.

Colour order. The Caffe NIN-ImageNet and VGG_ILSVRC_16/19 models were trained on BGR images
(OpenCV's order, mean-subtracted, in 0..255), while feature_nets feeds RGB. The converter
reverses the first convolution's input-channel axis (W[:, ::-1]), so the converted weights
applied to RGB pixels compute exactly what the Caffe weights compute on the same pixels in BGR
order. The per-channel means FEATURE_NETS uses (120 for NIN as chainer-gogh, VGG's ImageNet
mean) are already given in RGB order, with preprocess 'caffe' (pixels in 0..255).
"""
import os
from collections import namedtuple

import numpy as np

__all__ = ["read_caffemodel", "read_caffemodel_layers", "convert_caffemodel",
           "caffemodel_params", "caffe_layer_names", "CaffeLayer"]

CaffeLayer = namedtuple("CaffeLayer", "name type blobs")

# V1LayerParameter.LayerType values, spelled as LayerParameter's type strings
_V1_TYPES = {
    0: "None", 1: "Accuracy", 2: "BNLL", 3: "Concat", 4: "Convolution", 5: "Data",
    6: "Dropout", 7: "EuclideanLoss", 8: "Flatten", 9: "HDF5Data", 10: "HDF5Output",
    11: "Im2col", 12: "ImageData", 13: "InfogainLoss", 14: "InnerProduct", 15: "LRN",
    16: "MultinomialLogisticLoss", 17: "Pooling", 18: "ReLU", 19: "Sigmoid", 20: "Softmax",
    21: "SoftmaxWithLoss", 22: "Split", 23: "TanH", 24: "WindowData", 25: "Eltwise",
    26: "Power", 27: "SigmoidCrossEntropyLoss", 28: "HingeLoss", 29: "MemoryData",
    30: "ArgMax", 31: "Threshold", 32: "DummyData", 33: "Slice", 34: "MVN", 35: "AbsVal",
    36: "Silence", 37: "ContrastiveLoss", 38: "Exp", 39: "Deconvolution",
}

_VARINT, _FIXED64, _BYTES, _GROUP_START, _GROUP_END, _FIXED32 = 0, 1, 2, 3, 4, 5
_MAX_GROUP_DEPTH = 100


class _DecodeError(ValueError):
    pass


# ---- wire format ------------------------------------------------------------------------------

def _varint(buf, pos, end):
    """(value, position after it) of the varint at `pos`; unsigned, up to 64 bits."""
    result = shift = 0
    start = pos
    while True:
        if pos >= end:
            raise _DecodeError(f"truncated varint at byte {start} (truncated file?)")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 70:
            raise _DecodeError(f"varint longer than 10 bytes at byte {start}")


def _signed(value):
    """A varint read as int32/int64 (two's complement in 64 bits)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _read_key(buf, pos, end):
    """A field's key at `pos`: (field number, wire type, position after the key)."""
    key, after = _varint(buf, pos, end)
    field, wire = key >> 3, key & 7
    if field == 0 or field >= 1 << 29:
        raise _DecodeError(f"field number {field} at byte {pos} (valid: 1 .. 2**29 - 1)")
    return field, wire, after


def _next_field(buf, pos, end):
    """Read one field at `pos` (< end): (field number, wire type, a, b, position after it).
    Varint: a = the value. Fixed32/64: a..b the bytes. Length-delimited: a..b the payload.
    Group: a..b its contents (skipped by callers as an unknown field)."""
    key_at = pos
    field, wire, pos = _read_key(buf, pos, end)
    if wire == _VARINT:
        value, pos = _varint(buf, pos, end)
        return field, wire, value, None, pos
    if wire in (_FIXED64, _FIXED32):
        size = 8 if wire == _FIXED64 else 4
        if pos + size > end:
            raise _DecodeError(f"truncated {size * 8}-bit field {field} at byte {key_at}")
        return field, wire, pos, pos + size, pos + size
    if wire == _BYTES:
        length, pos = _varint(buf, pos, end)
        if length > end - pos:
            raise _DecodeError(f"field {field} at byte {key_at} is {length} bytes long but "
                               f"only {end - pos} remain (truncated file?)")
        return field, wire, pos, pos + length, pos + length
    if wire == _GROUP_START:
        start = pos
        stop, pos = _skip_group(buf, pos, end, field, key_at)
        return field, wire, start, stop, pos
    if wire == _GROUP_END:
        raise _DecodeError(f"end-group for field {field} at byte {key_at} without its start")
    raise _DecodeError(f"invalid wire type {wire} (field {field}) at byte {key_at}")


def _skip_group(buf, pos, end, field, key_at):
    """Skip a group's fields up to its matching end-group: (end of contents, position after)."""
    open_groups = [field]
    while True:
        if pos >= end:
            raise _DecodeError(f"group {field} opened at byte {key_at} is never closed "
                               "(truncated file?)")
        here = pos
        inner, wire, pos = _read_key(buf, pos, end)
        if wire == _GROUP_START:
            open_groups.append(inner)
            if len(open_groups) > _MAX_GROUP_DEPTH:
                raise _DecodeError(f"groups nested over {_MAX_GROUP_DEPTH} deep at byte {here}")
        elif wire == _GROUP_END:
            if open_groups.pop() != inner:
                raise _DecodeError(f"end-group {inner} at byte {here} does not match its start")
            if not open_groups:
                return here, pos
        else:
            # any other field: reuse the one-field reader from its key
            _, _, _, _, pos = _next_field(buf, here, end)


def _expect(wire, allowed, what, at):
    if wire not in allowed:
        raise _DecodeError(f"{what} has wire type {wire}, expected "
                           f"{' or '.join(map(str, allowed))} (field ending at byte {at})")


def _scalar_run(buf, pos, end, key, itemsize, dtype):
    """Consecutive non-packed scalars of one field from `pos`: each the key bytes `key` then
    `itemsize` bytes. Returns (values, position after the run). Scans in doubling chunks, so a
    run costs time proportional to its length, whatever follows it."""
    record = len(key) + itemsize
    want = np.frombuffer(key, np.uint8)
    count, chunk = 0, 64
    while True:
        n = min(chunk, (end - pos) // record - count)
        if n <= 0:
            break
        rows = np.frombuffer(buf, np.uint8, n * record, pos + count * record).reshape(n, record)
        match = np.all(rows[:, :len(key)] == want, axis=1)
        if match.all():
            count += n
            chunk *= 2
            continue
        count += int(np.argmin(match))
        break
    rows = np.frombuffer(buf, np.uint8, count * record, pos).reshape(count, record)
    values = np.ascontiguousarray(rows[:, len(key):]).view(dtype).reshape(-1)
    return values, pos + count * record


def _packed_varints(buf, pos, end):
    out = []
    while pos < end:
        value, pos = _varint(buf, pos, end)
        out.append(_signed(value))
    return out


# ---- messages ---------------------------------------------------------------------------------

def _parse_shape(buf, pos, end, dims):
    """BlobShape: append its dims (field 1, int64, packed or not) to `dims`."""
    while pos < end:
        field, wire, a, b, pos = _next_field(buf, pos, end)
        if field == 1:
            _expect(wire, (_VARINT, _BYTES), "BlobShape.dim", pos)
            dims.extend([_signed(a)] if wire == _VARINT else _packed_varints(buf, a, b))


def _key_bytes(field, wire):
    key, out = (field << 3) | wire, bytearray()
    while True:
        out.append((key & 0x7F) | (0x80 if key > 0x7F else 0))
        key >>= 7
        if not key:
            return bytes(out)


_DATA_KEY = _key_bytes(5, _FIXED32)
_DOUBLE_KEY = _key_bytes(8, _FIXED64)


def _parse_blob(buf, pos, end, where):
    """BlobProto -> numpy array (float32 from data, float64 from double_data), shaped."""
    dims, legacy = None, {}
    floats, doubles = [], []
    while pos < end:
        here = pos
        field, wire, a, b, pos = _next_field(buf, pos, end)
        if field == 7:
            _expect(wire, (_BYTES,), "BlobProto.shape", pos)
            dims = [] if dims is None else dims     # a repeated message field merges
            _parse_shape(buf, a, b, dims)
        elif field in (1, 2, 3, 4):
            _expect(wire, (_VARINT,), "BlobProto num/channels/height/width", pos)
            legacy[field] = _signed(a)
        elif field in (5, 8):
            name, size = ("data", 4) if field == 5 else ("double_data", 8)
            dtype = "<f4" if field == 5 else "<f8"
            fixed = _FIXED32 if field == 5 else _FIXED64
            _expect(wire, (_BYTES, fixed), f"BlobProto.{name}", pos)
            out = floats if field == 5 else doubles
            if wire == _BYTES:
                if (b - a) % size:
                    raise _DecodeError(f"{where}: packed {name} of {b - a} bytes at byte {a} is "
                                       f"not a whole number of {size}-byte values")
                out.append(np.frombuffer(buf, dtype, (b - a) // size, a))
            else:
                key = _DATA_KEY if field == 5 else _DOUBLE_KEY
                if bytes(buf[here:here + len(key)]) == key:
                    values, pos = _scalar_run(buf, here, end, key, size, dtype)
                    out.append(values)
                else:       # the same field with a longer (non-canonical) key
                    out.append(np.frombuffer(buf, dtype, 1, a))
    if floats and doubles:
        raise _DecodeError(f"{where}: both data and double_data are present")
    parts = doubles or floats
    values = parts[0] if len(parts) == 1 else np.concatenate(parts or [np.zeros(0, "<f4")])
    values = values.astype(np.float64 if doubles else np.float32)  # native order, own copy
    if dims is not None:
        shape = tuple(dims)
    elif legacy:
        shape = tuple(legacy.get(f, 0) for f in (1, 2, 3, 4))
    else:
        shape = (values.size,)
    if any(d < 0 for d in shape):
        raise _DecodeError(f"{where}: negative dimension in shape {shape}")
    if int(np.prod(shape, dtype=object)) != values.size:
        raise _DecodeError(f"{where}: shape {shape} needs {int(np.prod(shape, dtype=object))} "
                           f"values, the blob has {values.size}")
    return values.reshape(shape)


def _parse_layer(buf, pos, end, version, index):
    """A LayerParameter (version 2), V1LayerParameter (1) or V0LayerParameter (0):
    (name, type, [(start, stop) of each blob])."""
    name_field, type_field, blob_field = {2: (1, 2, 7), 1: (4, 5, 6), 0: (1, 2, 50)}[version]
    name = kind = None
    blobs, v0 = [], None
    while pos < end:
        field, wire, a, b, pos = _next_field(buf, pos, end)
        if field == name_field:
            _expect(wire, (_BYTES,), "layer name", pos)
            name = bytes(buf[a:b]).decode("utf-8", "replace")
        elif field == type_field:
            if version == 1:
                _expect(wire, (_VARINT,), "V1 layer type", pos)
                kind = _V1_TYPES.get(a, f"V1 type {a}")
            else:
                _expect(wire, (_BYTES,), "layer type", pos)
                kind = bytes(buf[a:b]).decode("utf-8", "replace")
        elif field == blob_field:
            _expect(wire, (_BYTES,), "layer blobs", pos)
            blobs.append((a, b))
        elif version == 1 and field == 1:
            _expect(wire, (_BYTES,), "V1 layer's V0 layer", pos)
            v0 = _parse_layer(buf, a, b, 0, index)
    if v0 is not None:      # the oldest files keep everything in the nested V0 layer
        name = name if name is not None else v0[0]
        kind = kind if kind is not None else v0[1]
        blobs = blobs or v0[2]
    return (name if name is not None else f"<layer {index}>"), (kind or ""), blobs


def _as_buffer(source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    path = os.fspath(source)
    with open(path, "rb") as f:
        return f.read(), path


def read_caffemodel_layers(source, layers=None):
    """[CaffeLayer(name, type, blobs)] of a .caffemodel (a path, or its bytes), in file order:
    the `layer` (V2) and legacy `layers` (V1) entries of NetParameter. `layers`: decode the
    blobs of these layer names only (others get blobs None), which saves memory on large
    files. Raises ValueError on malformed input."""
    buf, label = _as_buffer(source)
    wanted = None if layers is None else {layers} if isinstance(layers, str) else set(layers)
    out = []
    try:
        pos, end = 0, len(buf)
        while pos < end:
            field, wire, a, b, pos = _next_field(buf, pos, end)
            if field in (100, 2):
                _expect(wire, (_BYTES,), "NetParameter.layer" + ("s" if field == 2 else ""), pos)
                name, kind, ranges = _parse_layer(buf, a, b, 2 if field == 100 else 1, len(out))
                if wanted is not None and name not in wanted:
                    out.append(CaffeLayer(name, kind, None))
                    continue
                blobs = [_parse_blob(buf, s, e, f"layer {name!r} blob {i}")
                         for i, (s, e) in enumerate(ranges)]
                out.append(CaffeLayer(name, kind, blobs))
    except _DecodeError as exc:
        raise ValueError(f"read_caffemodel: {label}: {exc}") from None
    return out


def read_caffemodel(source, layers=None):
    """{layer name: [blob arrays]} of a .caffemodel (a path, or its bytes). Arrays are float32
    (float64 for blobs stored as double_data), shaped as the file says (a convolution's weights
    (K, C, kh, kw), its bias (K,) or, in legacy files, (1, 1, 1, K)). Layers without blobs map
    to []. `layers`: only these names are decoded and returned."""
    return _by_name(read_caffemodel_layers(source, layers))


def _by_name(layers):
    out = {}
    for layer in layers:
        if layer.blobs is None:
            continue
        if layer.name in out:
            if out[layer.name] and layer.blobs:
                raise ValueError(f"read_caffemodel: layer {layer.name!r} appears twice with "
                                 "blobs")
            if not layer.blobs:
                continue
        out[layer.name] = layer.blobs
    return out


# ---- conversion to feature_nets ---------------------------------------------------------------

def _nin_names():
    names = {"conv1": "conv1", "conv2": "conv2", "conv3": "conv3",
             "conv4_1024": "conv4-1024", "cccp7_1024": "cccp7-1024",
             "cccp8_1024": "cccp8-1024"}
    names.update({f"cccp{i}": f"cccp{i}" for i in range(1, 7)})
    return names


def _vgg_names(blocks):
    return {f"conv{b}_{i}": f"conv{b}_{i}" for b, count in enumerate(blocks, start=1)
            for i in range(1, count + 1)}


# our layer name -> the Caffe model's (NIN-ImageNet, VGG_ILSVRC_16/19_layers); the converter
# uses the ones the net's spec has (feature nets stop at their deepest feature layer)
_CAFFE_NAMES = {
    "nin": _nin_names(),
    "vgg16": _vgg_names((2, 2, 3, 3, 3)),
    "vgg19": _vgg_names((2, 2, 4, 4, 4)),
}


def caffe_layer_names(arch):
    """{our conv name: Caffe layer name} for the convs of FEATURE_NETS[arch]'s spec."""
    from .feature_nets import FEATURE_NETS
    if arch not in _CAFFE_NAMES:
        raise ValueError(f"Caffe weights: arch must be one of {sorted(_CAFFE_NAMES)}, "
                         f"got {arch!r}")
    table = _CAFFE_NAMES[arch]
    return {op["name"]: table[op["name"]] for op in FEATURE_NETS[arch][0]()
            if op["op"] == "conv"}


def caffemodel_params(source, arch, dtype=np.float32):
    """feature_net(arch)'s weights {'<conv>/W', '<conv>/b'} from a .caffemodel (a path or its
    bytes), the first conv's input channels reversed from Caffe's BGR to RGB."""
    from .feature_nets import FEATURE_NETS
    names = caffe_layer_names(arch)
    convs = {op["name"]: op for op in FEATURE_NETS[arch][0]() if op["op"] == "conv"}
    label = source if not isinstance(source, (bytes, bytearray, memoryview)) else "<bytes>"
    found = read_caffemodel_layers(source, layers=set(names.values()))
    layers = _by_name(found)
    missing = [caffe for caffe in names.values() if caffe not in layers]
    if missing:
        present = [layer.name for layer in found]
        shown = ", ".join(present[:20]) + (", ..." if len(present) > 20 else "")
        raise ValueError(f"convert_caffemodel: {label} lacks layer(s) {', '.join(missing)} "
                         f"that {arch} needs (the file has {len(present)} layers"
                         f"{': ' + shown if present else ''})")
    params = {}
    first = next(iter(convs))
    for ours, caffe in names.items():
        op = convs[ours]
        blobs = layers[caffe]
        label_layer = caffe if caffe == ours else f"{caffe} (our {ours})"
        if len(blobs) != 2:
            raise ValueError(f"convert_caffemodel: layer {label_layer} has {len(blobs)} blobs, "
                             "expected 2 (weights and bias)")
        W, b = blobs
        want_w = (op["c_out"], op["c_in"], op["k"], op["k"])
        if W.shape != want_w:
            raise ValueError(f"convert_caffemodel: layer {label_layer} weights have shape "
                             f"{W.shape}, {arch} expects {want_w}")
        # a bias is (K,), or (1, 1, 1, K) in legacy files
        if b.ndim == 0 or b.shape[-1] != op["c_out"] or b.size != op["c_out"]:
            raise ValueError(f"convert_caffemodel: layer {label_layer} bias has shape "
                             f"{b.shape}, {arch} expects {(op['c_out'],)}")
        if ours == first:
            W = W[:, ::-1]      # BGR -> RGB input channels
        params[ours + "/W"] = np.ascontiguousarray(W, dtype=dtype)
        params[ours + "/b"] = np.ascontiguousarray(b.reshape(-1), dtype=dtype)
    return params


def convert_caffemodel(source, out_file, arch):
    """Write an .npz for feature_net(arch, weights=out_file) from a Caffe .caffemodel: the
    original NIN-ImageNet model (arch 'nin': conv1, cccp1..6, conv4-1024) or
    VGG_ILSVRC_16_layers / VGG_ILSVRC_19_layers ('vgg16' / 'vgg19': conv1_1 ...). Layers the
    feature net does not reach (cccp7-1024, deeper convs, the classifier) are ignored; the
    first conv's input channels are reversed (Caffe's BGR -> RGB); preprocess is 'caffe'.
    Raises ValueError naming the layer when one is missing or has an unexpected shape."""
    params = caffemodel_params(source, arch)
    with open(out_file, "wb") as f:
        np.savez(f, preprocess=np.array("caffe"), **params)
