"""A pack's descriptor network, run by ONNX Runtime as its manifest says.

Input: aligned chips (N, H, W, 3) uint8 RGB at the network's input size (the
template's chip). They are reordered to the manifest's channel order,
normalised ``(pixel - mean) / std`` per channel, laid out NHWC or NCHW, and
run in slices of the network's fixed batch (the last slice padded with zero
chips, their outputs dropped) or all at once when the batch is free.
Output: (N, dim) float32; L2-normalised when the metric is cosine, so that
Euclidean distance between descriptors is a monotone function of cosine
similarity (``d^2 = 2 - 2 cos``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import ModelPackError
from .pack_manifest import Network


def l2_normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return (v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


class OnnxDescriptor:
    """An :class:`~faceledger.engine.types.Embedder` for one pack's descriptor network."""

    def __init__(self, net: Network, path: Path | str, *, threads: int = 1) -> None:
        self.net = net
        self.name = f"onnx:{Path(path).name}"
        where = "networks[descriptor]"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
            raise ModelPackError(f"{path} is not a model ONNX Runtime can load: {str(exc)[:200]}.",
                                 f"{where}.file") from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        names = [i.name for i in inputs]
        if net.input and net.input not in names:
            raise ModelPackError(f"pack.json field {where}.input: {net.input!r} is not an input of the network "
                                 f"(it has {names}).", f"{where}.input")
        if not net.input and len(inputs) != 1:
            raise ModelPackError(f"pack.json field {where}.input: the network has inputs {names}; name one.",
                                 f"{where}.input")
        self._input = net.input or inputs[0].name
        out_names = [o.name for o in outputs]
        if net.output and net.output not in out_names:
            raise ModelPackError(f"pack.json field {where}.output: {net.output!r} is not an output of the network "
                                 f"(it has {out_names}).", f"{where}.output")
        self._output = net.output or out_names[0]
        shape = next(i.shape for i in inputs if i.name == self._input)
        self._check_input_shape(shape)
        self._mean = np.array(net.mean, np.float32)
        self._inv_std = (1.0 / np.array(net.std, np.float32)).astype(np.float32)

    def _check_input_shape(self, shape: list) -> None:
        w, h = self.net.input_size
        want = [self.net.batch or None, h, w, 3] if self.net.layout == "NHWC" else [self.net.batch or None, 3, h, w]
        if len(shape) != 4:
            raise ModelPackError(f"pack.json field networks[descriptor].layout: the network's input has shape "
                                 f"{shape}, not 4 dimensions.", "networks[descriptor].layout")
        for axis, (have, expect) in enumerate(zip(shape, want, strict=True)):
            if isinstance(have, int) and expect is not None and have != expect:
                field = "batch" if axis == 0 else "input_size" if expect != 3 else "layout"
                raise ModelPackError(
                    f"pack.json field networks[descriptor].{field}: the network's input has shape {shape}, "
                    f"the manifest implies {[e if e is not None else 'N' for e in want]} "
                    f"({self.net.layout}, {w}x{h}, batch {self.net.batch or 'any'}).",
                    f"networks[descriptor].{field}")
        if self.net.batch == 0 and isinstance(shape[0], int) and shape[0] > 0:
            raise ModelPackError(
                f"pack.json field networks[descriptor].batch: the network's batch is fixed at {shape[0]}; "
                f"say \"batch\": {shape[0]} so single faces are padded.", "networks[descriptor].batch")

    def _prepare(self, chips: np.ndarray) -> np.ndarray:
        x = chips.astype(np.float32)
        if self.net.channel_order == "BGR":
            x = x[..., ::-1]
        x = (x - self._mean) * self._inv_std
        if self.net.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _run(self, x: np.ndarray) -> np.ndarray:
        out = self._session.run([self._output], {self._input: x})[0]
        return np.asarray(out, np.float32).reshape(len(x), -1)

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """(N, dim) float32 descriptors of (N, H, W, 3) uint8 RGB chips."""
        n = len(chips)
        if n == 0:
            return np.zeros((0, self.net.dim), np.float32)
        x = self._prepare(np.asarray(chips))
        step = self.net.batch
        if step == 0:
            out = self._run(x)
        else:
            parts = []
            for at in range(0, n, step):
                part = x[at:at + step]
                if len(part) < step:  # a fixed-batch network: pad with zero chips, drop their outputs
                    part = np.concatenate([part, np.zeros((step - len(part), *part.shape[1:]), np.float32)])
                parts.append(self._run(part)[:min(step, n - at)])
            out = np.concatenate(parts)
        if out.shape[1] != self.net.dim:
            raise ModelPackError(f"pack.json field networks[descriptor].dim: the manifest says {self.net.dim}, "
                                 f"the network gives {out.shape[1]}-d descriptors.", "networks[descriptor].dim")
        return l2_normalise(out) if self.net.metric == "cosine" else out

    def probe(self) -> None:
        """Run the network once on blank chips: the output dimension must be the manifest's."""
        w, h = self.net.input_size
        self.embed(np.full((1, h, w, 3), 128, np.uint8))
