"""dlib's face descriptor ResNet, same weights, run by ONNX Runtime.

The network in ``dlib_face_recognition_resnet_model_v1.dat`` is read with
:mod:`faceledger.engine.dlib_weights` (no dlib needed), translated into an ONNX
graph in memory, and run with ONNX Runtime's CPU kernels (MLAS: AVX2/AVX-512
convolutions), which is several times faster than dlib's BLAS-less wheels.

Translation, layer by layer (dlib semantics -> ONNX):

- ``input_rgb_image_sized``: uint8 HWC chips -> float, (pixel - mean) / 256,
  planar R, G, B (NCHW) - done inside the graph;
- ``con_`` followed by ``affine_``: one ``Conv`` with the affine folded into its
  weights and bias (w * gamma, b * gamma + beta), folded in float64;
- ``relu_`` -> ``Relu``; ``max_pool_`` / ``avg_pool_`` -> ``MaxPool`` /
  ``AveragePool`` (floor output size, as dlib); a (0, 0) window ->
  ``GlobalAveragePool``;
- tag / skip / ``add_prev_``: dlib's ResNet writes a residual block as
  ``add_prev1<block<tag1<x>>>`` and a down-sampling one as
  ``add_prev2<avg_pool<skip1<tag2<block<tag1<x>>>>>>``. On disk a lone marker is
  therefore a tag, and a pair of markers is "tag here, then skip back to the
  previous tag"; ``add_prev_`` adds the most recent tag. When the two addends
  differ in shape dlib adds them with zero padding (bottom/right, extra
  channels), which becomes ``Pad`` + ``Add``;
- ``fc_`` (no bias) -> ``Flatten`` + ``MatMul`` (dlib stores W as inputs x outputs).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from faceledger.engine.dlib_weights import (
    AddPrev,
    Affine,
    Conv,
    DlibNet,
    FullyConnected,
    InputRGB,
    Layer,
    Marker,
    Pool,
    Relu,
    load_dlib_net,
)
from faceledger.engine.types import CHIP_SIZE, DESCRIPTOR_DIM

OPSET = 17
_INPUT = "chips"
_OUTPUT = "descriptors"


class UnsupportedNetwork(ValueError):
    """The dlib network uses a layer pattern the translator does not handle."""


# ----------------------------------------------------------------------------- graph builder


@dataclass
class _Value:
    """A graph value and its static per-sample shape (C, H, W) or (F,)."""

    name: str
    shape: tuple[int, ...]


@dataclass
class _GraphBuilder:
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    counter: int = 0

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}_{self.counter}"

    def const(self, stem: str, array: np.ndarray) -> str:
        name = self.fresh(stem)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attrs: Any) -> str:
        out = self.fresh(stem)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - kernel) // stride


def _emit_input(g: _GraphBuilder, layer: InputRGB) -> _Value:
    nr, nc = layer.size if layer.size != (0, 0) else (CHIP_SIZE, CHIP_SIZE)
    x = g.node("Cast", [_INPUT], "as_float", to=TensorProto.FLOAT)
    mean = np.asarray(layer.mean_rgb, dtype=np.float32).reshape(1, 1, 1, 3)
    x = g.node("Sub", [x, g.const("mean_rgb", mean)], "centred")
    x = g.node("Mul", [x, g.const("inv_256", np.asarray(1.0 / 256.0, np.float32))], "scaled")
    x = g.node("Transpose", [x], "nchw", perm=[0, 3, 1, 2])
    return _Value(x, (3, nr, nc))


def _emit_conv(g: _GraphBuilder, x: _Value, conv: Conv, affine: Affine | None) -> _Value:
    weight = conv.weight.astype(np.float64)
    bias = conv.bias.astype(np.float64)
    if affine is not None:
        gamma = affine.gamma.astype(np.float64)
        weight = weight * gamma[:, None, None, None]
        bias = bias * gamma + affine.beta.astype(np.float64)
    out_c, in_c, kh, kw = conv.weight.shape
    if in_c != x.shape[0]:
        raise UnsupportedNetwork(f"conv expects {in_c} channels, input has {x.shape[0]}")
    (sy, sx), (py, px) = conv.stride, conv.padding
    name = g.node(
        "Conv",
        [x.name, g.const("w", weight.astype(np.float32)), g.const("b", bias.astype(np.float32))],
        "conv",
        kernel_shape=[kh, kw],
        strides=[sy, sx],
        pads=[py, px, py, px],
    )
    shape = (out_c, _conv_out(x.shape[1], kh, sy, py), _conv_out(x.shape[2], kw, sx, px))
    return _Value(name, shape)


def _emit_pool(g: _GraphBuilder, x: _Value, pool: Pool) -> _Value:
    if pool.window == (0, 0):
        op = "GlobalAveragePool" if pool.mode == "avg" else "GlobalMaxPool"
        return _Value(g.node(op, [x.name], "gpool"), (x.shape[0], 1, 1))
    (kh, kw), (sy, sx), (py, px) = pool.window, pool.stride, pool.padding
    op = "AveragePool" if pool.mode == "avg" else "MaxPool"
    attrs: dict[str, Any] = {
        "kernel_shape": [kh, kw],
        "strides": [sy, sx],
        "pads": [py, px, py, px],
    }
    if op == "AveragePool":
        attrs["count_include_pad"] = 0
    name = g.node(op, [x.name], "pool", **attrs)
    shape = (x.shape[0], _conv_out(x.shape[1], kh, sy, py), _conv_out(x.shape[2], kw, sx, px))
    return _Value(name, shape)


def _pad_to(g: _GraphBuilder, x: _Value, shape: tuple[int, ...]) -> str:
    """Zero-pad at the end of each (C, H, W) axis, as dlib's mismatched ``add`` does."""
    if x.shape == shape:
        return x.name
    extra = [t - s for s, t in zip(x.shape, shape, strict=True)]
    pads = np.asarray([0, 0, 0, 0, 0, *extra], dtype=np.int64)
    return g.node("Pad", [x.name, g.const("pads", pads)], "zero_pad")


def _emit_add(g: _GraphBuilder, a: _Value, b: _Value) -> _Value:
    shape = tuple(max(s, t) for s, t in zip(a.shape, b.shape, strict=True))
    name = g.node("Add", [_pad_to(g, a, shape), _pad_to(g, b, shape)], "residual")
    return _Value(name, shape)


def _emit_fc(g: _GraphBuilder, x: _Value, fc: FullyConnected) -> _Value:
    flat = g.node("Flatten", [x.name], "flat", axis=1)
    n_in, n_out = fc.weight.shape
    if n_in != int(np.prod(x.shape)):
        raise UnsupportedNetwork(f"fc expects {n_in} inputs, has {int(np.prod(x.shape))}")
    out = g.node("MatMul", [flat, g.const("fc_w", fc.weight.astype(np.float32))], "fc")
    if fc.bias is not None:
        out = g.node("Add", [out, g.const("fc_b", fc.bias.astype(np.float32))], "fc_bias")
    return _Value(out, (n_out,))


def _translate(g: _GraphBuilder, layers: list[Layer]) -> _Value:
    """Walk the execution-ordered layers, emitting nodes; returns the final value."""
    first = layers[0]
    if not isinstance(first, InputRGB):
        raise UnsupportedNetwork("the network must start with an RGB input layer")
    x = _emit_input(g, first)
    tags: list[_Value] = []
    i = 1
    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, Conv):
            affine = nxt if isinstance(nxt, Affine) else None
            x = _emit_conv(g, x, layer, affine)
            i += 1 if affine is not None else 0
        elif isinstance(layer, Affine):
            raise UnsupportedNetwork("affine_ not directly after con_ is not supported")
        elif isinstance(layer, Relu):
            x = _Value(g.node("Relu", [x.name], "relu"), x.shape)
        elif isinstance(layer, Pool):
            x = _emit_pool(g, x, layer)
        elif isinstance(layer, Marker):
            tags.append(x)
            if isinstance(nxt, Marker):  # tag2 then skip1: jump back to the previous tag
                if len(tags) < 2:
                    raise UnsupportedNetwork("skip layer without an earlier tag")
                x = tags[-2]
                i += 1
        elif isinstance(layer, AddPrev):
            if not tags:
                raise UnsupportedNetwork("add_prev_ without a tag")
            x = _emit_add(g, x, tags[-1])
            tags.clear()
        elif isinstance(layer, FullyConnected):
            x = _emit_fc(g, x, layer)
        else:
            raise UnsupportedNetwork(f"no translation for {type(layer).__name__}")
        i += 1
    return x


def build_onnx_model(net: DlibNet) -> onnx.ModelProto:
    """Translate a parsed dlib face descriptor network into an ONNX model."""
    g = _GraphBuilder()
    out = _translate(g, net.layers)
    if out.shape != (DESCRIPTOR_DIM,):
        raise UnsupportedNetwork(f"network output has shape {out.shape}, want ({DESCRIPTOR_DIM},)")
    g.nodes.append(helper.make_node("Identity", [out.name], [_OUTPUT], name=_OUTPUT))
    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet",
        [helper.make_tensor_value_info(_INPUT, TensorProto.UINT8, ["N", CHIP_SIZE, CHIP_SIZE, 3])],
        [helper.make_tensor_value_info(_OUTPUT, TensorProto.FLOAT, ["N", DESCRIPTOR_DIM])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _model_bytes(model_path: Path, cache_dir: Path | None) -> bytes:
    """The serialised ONNX model, from ``cache_dir`` when present there."""
    if cache_dir is None:
        return build_onnx_model(load_dlib_net(model_path)).SerializeToString()
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()[:16]
    cached = cache_dir / f"dlib_resnet_{digest}_op{OPSET}.onnx"
    if cached.is_file():
        return cached.read_bytes()
    blob = build_onnx_model(load_dlib_net(model_path)).SerializeToString()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    tmp.write_bytes(blob)
    tmp.replace(cached)
    return blob


def _session_options(threads: int) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if threads > 1:  # don't burn the sibling workers' cores busy-waiting between ops
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


# ----------------------------------------------------------------------------- embedder


def _providers() -> list[str]:
    """CUDA first where onnxruntime-gpu sees a GPU; the CPU always as the fallback."""
    available = set(ort.get_available_providers())
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class FastEmbedder:
    """dlib's 128-d face descriptor network on ONNX Runtime (same weights, same maths).

    ``embed`` takes aligned chips (N, 150, 150, 3) uint8 RGB, as
    ``dlib.get_face_chip(img, shape, 150, 0.25)`` makes them, and returns
    (N, 128) float32 descriptors matching ``compute_face_descriptor``.
    """

    name: str

    def __init__(
        self,
        model_path: str | Path,
        threads: int = 1,
        cache_dir: str | Path | None = None,
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be >= 1")
        blob = _model_bytes(Path(model_path), Path(cache_dir) if cache_dir else None)
        self._session = ort.InferenceSession(
            blob, sess_options=_session_options(threads), providers=_providers()
        )
        self.threads = threads
        self.name = f"dlib-resnet-v1/onnxruntime-{ort.__version__}"

    def embed(self, chips: np.ndarray) -> np.ndarray:
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        if chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"chips must be (N, {CHIP_SIZE}, {CHIP_SIZE}, 3), got {chips.shape}")
        if chips.dtype != np.uint8:
            raise TypeError(f"chips must be uint8, got {chips.dtype}")
        if chips.shape[0] == 0:
            return np.zeros((0, DESCRIPTOR_DIM), dtype=np.float32)
        (out,) = self._session.run([_OUTPUT], {_INPUT: np.ascontiguousarray(chips)})
        return np.asarray(out, dtype=np.float32)
