"""Read a dlib DNN ``.dat`` file (the face descriptor ResNet) into NumPy, without dlib.

dlib serialises a network recursively, outermost layer first, and every wrapper
writes its *subnetwork before its own details*. So the file holds:

1. the loss layer: ``int version`` (1), its details (``"loss_metric_2"``, margin,
   distance threshold), then the subnetwork;
2. a chain of version numbers, one per wrapper, outermost first: 2 for an
   ``add_layer``, 1 for an ``add_tag_layer`` / ``add_skip_layer`` (these two write
   nothing else and are indistinguishable on disk), and 3 for the innermost
   ``add_layer`` whose subnetwork is the input layer;
3. the input layer's details, then, innermost first (i.e. in execution order),
   each ``add_layer``'s details followed by its bookkeeping (three bools and three
   empty tensors; the innermost one also writes its sample expansion factor).

Primitive encodings (``dlib/serialize.h``, ``dlib/float_details.h``):

- integers: one control byte (low nibble = byte count, bit 7 = negative) then
  the magnitude, little-endian;
- floats / doubles: an integer mantissa and an integer exponent, value =
  mantissa * 2**exponent (exponents 32000-32002 mark inf, -inf and NaN);
- strings: integer length then bytes; bools: the characters ``'1'`` / ``'0'``;
- tensors (version 2): num_samples, k, nr, nc then raw little-endian float32;
- alias tensors (version 1): num_samples, k, nr, nc (a view into ``params``).

The result is a flat, execution-ordered list of layer records. Tag/skip wrappers
appear as :class:`Marker` records; :func:`faceledger.engine.fast_embedder`
resolves them with the ResNet's tag1/tag2/skip1 convention.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_FLOAT_INF, _FLOAT_NINF, _FLOAT_NAN = 32000, 32001, 32002


class DlibFormatError(ValueError):
    """The file is not a dlib network of the kind this reader understands."""


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class InputRGB:
    """``input_rgb_image_sized``: planar R,G,B, (pixel - mean) / 256."""

    mean_rgb: tuple[float, float, float]
    size: tuple[int, int]  # (nr, nc); (0, 0) for the unsized input layer


@dataclass(frozen=True)
class Conv:
    """``con_``: cross-correlation, weight (out, in, kh, kw), bias (out,)."""

    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class Affine:
    """``affine_`` (batch norm frozen at inference): y = x * gamma[k] + beta[k]."""

    gamma: np.ndarray
    beta: np.ndarray


@dataclass(frozen=True)
class Relu:
    """``relu_``."""


@dataclass(frozen=True)
class Pool:
    """``max_pool_`` / ``avg_pool_``; a window of (0, 0) pools the whole plane."""

    mode: str  # "max" or "avg"
    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class AddPrev:
    """``add_prev_``: add a tagged earlier output, zero-padding the smaller one."""


@dataclass(frozen=True)
class FullyConnected:
    """``fc_``: y = x @ weight (+ bias); weight is (num_inputs, num_outputs)."""

    weight: np.ndarray
    bias: np.ndarray | None


@dataclass(frozen=True)
class Marker:
    """An ``add_tag_layer`` or ``add_skip_layer`` (identical on disk)."""


Layer = InputRGB | Conv | Affine | Relu | Pool | AddPrev | FullyConnected | Marker


@dataclass
class DlibNet:
    """A parsed network: the loss name and the layers in execution order."""

    loss: str
    layers: list[Layer] = field(default_factory=list)

    def count(self, kind: type) -> int:
        return sum(isinstance(layer, kind) for layer in self.layers)


# ----------------------------------------------------------------------------- reader


class _Reader:
    """Sequential decoder of dlib's portable primitive encodings."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"unexpected end of file at byte {self.pos}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int_(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8:
            raise DlibFormatError(f"bad integer control byte {control:#x} at {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def float_(self) -> float:
        mantissa = self.int_()
        exponent = self.int_()
        if exponent == _FLOAT_INF:
            return float("inf")
        if exponent == _FLOAT_NINF:
            return float("-inf")
        if exponent == _FLOAT_NAN:
            return float("nan")
        return float(mantissa) * 2.0**exponent

    def string(self) -> str:
        return self._take(self.int_()).decode("latin-1")

    def bool_(self) -> bool:
        char = self._take(1)
        if char not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {char!r} at byte {self.pos - 1}")
        return char == b"1"

    def shape4(self) -> tuple[int, int, int, int]:
        return (self.int_(), self.int_(), self.int_(), self.int_())

    def tensor(self) -> np.ndarray:
        version = self.int_()
        if version != 2:
            raise DlibFormatError(f"unsupported tensor version {version} at byte {self.pos}")
        shape = self.shape4()
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        version = self.int_()
        if version != 1:
            raise DlibFormatError(f"unsupported alias_tensor version {version}")
        return self.shape4()

    def expect(self, actual: object, wanted: object, what: str) -> None:
        if actual != wanted:
            raise DlibFormatError(
                f"{what}: expected {wanted!r}, found {actual!r} near byte {self.pos}"
            )


# ----------------------------------------------------------------------------- layer details


def _read_input(r: _Reader, name: str) -> InputRGB:
    mean = (r.float_(), r.float_(), r.float_())
    size = (r.int_(), r.int_()) if name == "input_rgb_image_sized" else (0, 0)
    return InputRGB(mean_rgb=mean, size=size)


def _read_con(r: _Reader) -> Conv:
    params = r.tensor().reshape(-1)
    num_filters, nr, nc = r.int_(), r.int_(), r.int_()
    stride = (r.int_(), r.int_())
    padding = (r.int_(), r.int_())
    filters = r.alias()
    biases = r.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.float_()
    r.expect(filters[0], num_filters, "con_ filter count")
    r.expect(filters[2:], (nr, nc), "con_ filter size")
    n_weights = int(np.prod(filters))
    r.expect(params.size, n_weights + int(np.prod(biases)), "con_ params size")
    return Conv(
        weight=params[:n_weights].reshape(filters),
        bias=params[n_weights:].copy(),
        stride=stride,
        padding=padding,
    )


def _read_affine(r: _Reader) -> Affine:
    params = r.tensor().reshape(-1)
    gamma = r.alias()
    beta = r.alias()
    mode = r.int_()
    r.expect(mode, 0, "affine_ mode (CONV_MODE)")
    n = int(np.prod(gamma))
    r.expect(int(np.prod(beta)), n, "affine_ beta size")
    return Affine(gamma=params[:n].copy(), beta=params[n : 2 * n].copy())


def _read_pool(r: _Reader, mode: str) -> Pool:
    window = (r.int_(), r.int_())
    stride = (r.int_(), r.int_())
    padding = (r.int_(), r.int_())
    return Pool(mode=mode, window=window, stride=stride, padding=padding)


def _read_fc(r: _Reader, name: str) -> FullyConnected:
    num_outputs, num_inputs = r.int_(), r.int_()
    params = r.tensor().reshape(-1)
    weights = r.alias()
    r.alias()  # biases view
    bias_mode = r.int_()  # 0 = FC_HAS_BIAS, 1 = FC_NO_BIAS
    for _ in range(4):
        r.float_()
    if name == "fc_3":
        r.bool_()  # use_bias
    n = num_inputs * num_outputs
    r.expect(int(np.prod(weights)), n, "fc_ weight size")
    weight = params[:n].reshape(num_inputs, num_outputs)
    bias = params[n : n + num_outputs].copy() if bias_mode == 0 else None
    return FullyConnected(weight=weight, bias=bias)


_DETAIL_READERS: dict[str, Callable[[_Reader, str], Layer]] = {
    "con_4": lambda r, _n: _read_con(r),
    "affine_": lambda r, _n: _read_affine(r),
    "relu_": lambda r, _n: Relu(),
    "max_pool_2": lambda r, _n: _read_pool(r, "max"),
    "avg_pool_2": lambda r, _n: _read_pool(r, "avg"),
    "add_prev_": lambda r, _n: AddPrev(),
    "fc_2": _read_fc,
    "fc_3": _read_fc,
}


def _read_details(r: _Reader) -> Layer:
    name = r.string()
    reader = _DETAIL_READERS.get(name)
    if reader is None:
        raise DlibFormatError(f"unsupported layer type {name!r} near byte {r.pos}")
    return reader(r, name)


def _read_bookkeeping(r: _Reader, innermost: bool) -> None:
    """this_layer_setup_called, gradient_input_is_stale, get_output_..._disabled, 3 tensors."""
    for _ in range(3):
        r.bool_()
    for _ in range(3):
        r.tensor()
    if innermost:
        r.int_()  # _sample_expansion_factor (add_layer version 3 only)


# ----------------------------------------------------------------------------- entry points


def parse_dlib_net(data: bytes) -> DlibNet:
    """Decode the bytes of a dlib ``loss_metric`` network file."""
    r = _Reader(data)
    r.expect(r.int_(), 1, "add_loss_layer version")
    loss = r.string()
    if not loss.startswith("loss_metric"):
        raise DlibFormatError(f"unsupported loss layer {loss!r}")
    r.float_()  # margin
    r.float_()  # distance threshold

    wrappers: list[int] = []
    while True:
        version = r.int_()
        if version not in (1, 2, 3):
            raise DlibFormatError(f"unexpected wrapper version {version} at byte {r.pos}")
        wrappers.append(version)
        if version == 3:
            break

    name = r.string()
    if not name.startswith("input_rgb_image"):
        raise DlibFormatError(f"unsupported input layer {name!r}")
    net = DlibNet(loss=loss, layers=[_read_input(r, name)])

    for version in reversed(wrappers):
        if version == 1:
            net.layers.append(Marker())
            continue
        net.layers.append(_read_details(r))
        _read_bookkeeping(r, innermost=version == 3)

    if r.pos != len(data):
        raise DlibFormatError(f"{len(data) - r.pos} trailing bytes after the network")
    return net


def load_dlib_net(path: str | Path) -> DlibNet:
    """Read and decode a dlib network file from disk."""
    return parse_dlib_net(Path(path).read_bytes())
