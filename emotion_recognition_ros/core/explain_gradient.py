"""The gradient above an explained layer without autograd, for ONNX Runtime (the node's CPU path; core/explain.py).

`layers_above` cuts timm's EfficientNet just above a stage; `_Gradient` writes that part's forward and backward
pass as forward operations only; `OrtGradient` exports it once and runs it with ONNX Runtime, about twice as fast
as eager torch's forward and backward on one CPU thread (docs/node.md, "Heatmaps", for the measured rate).
"""
from __future__ import annotations

import copy
import operator
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def layers_above(model: nn.Module, layer: str) -> nn.Module | None:
    """The network from just above `layer` to the logits, as one module, where the model's structure makes that
    exact: timm's EfficientNet (conv_stem, bn1, blocks, conv_head, bn2, forward_head, its own forward) explained
    at a whole stage `blocks.<i>`. None elsewhere (the explainer then runs the whole network)."""
    parts = layer.split(".")
    blocks = getattr(model, "blocks", None)
    if len(parts) != 2 or parts[0] != "blocks" or not parts[1].isdigit() or not isinstance(blocks, nn.Sequential):
        return None
    try:
        from timm.models.efficientnet import EfficientNet
    except ImportError:
        return None
    kind = type(model)
    if not (isinstance(model, EfficientNet) and not model.grad_checkpointing and all(
            getattr(kind, f) is getattr(EfficientNet, f) for f in ("forward", "forward_features", "forward_head"))):
        return None
    return _Above(model, blocks[int(parts[1]) + 1:])


class _Above(nn.Module):
    def __init__(self, model: nn.Module, rest: nn.Sequential):
        super().__init__()
        self.rest, self.conv_head, self.bn2 = rest, model.conv_head, model.bn2
        self.global_pool, self.classifier = model.global_pool, model.classifier  # forward_head in eval (no dropout)

    def forward(self, acts: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.global_pool(self.bn2(self.conv_head(self.rest(acts)))))


class _Gradient(nn.Module):
    """(acts, onehot) -> d(onehot . logits)/d acts for the network above the explained layer (`_Above`), written
    out as forward operations only: the forward pass keeps each activation's output, the backward pass is each
    operation's transpose (a convolution's transposed convolution, an activation's 0/1 mask, a pool's spread),
    in reverse order. Autograd's arithmetic, in a form ONNX Runtime can run (it cannot run autograd): exported
    once, it computes the gradient about twice as fast as eager torch's forward and backward on one CPU thread.
    Raises ValueError for an operation it has no transpose for."""

    def __init__(self, above: nn.Module):
        super().__init__()
        self.above, self.nodes = above, list(_trace(above).nodes)
        for node in self.nodes:
            if node.op == "call_module":
                m = above.get_submodule(node.target)
                if isinstance(m, nn.Conv2d) and (m.padding_mode != "zeros" or isinstance(m.padding, str)):
                    raise ValueError(f"no transpose for {node.target}: padding {m.padding} {m.padding_mode}")
                if isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size not in (1, (1, 1)):
                    raise ValueError(f"no transpose for {node.target}: output size {m.output_size}")
                if not isinstance(m, (nn.Identity, nn.Dropout, nn.Conv2d, nn.ReLU, nn.ReLU6, nn.AdaptiveAvgPool2d,
                                      nn.Flatten, nn.Linear)) or (isinstance(m, nn.Dropout) and m.training):
                    raise ValueError(f"no transpose for {node.target} ({type(m).__name__})")
                if isinstance(m, nn.Flatten) and (m.start_dim, m.end_dim) != (1, -1):
                    raise ValueError(f"no transpose for {node.target}: flatten {m.start_dim}..{m.end_dim}")
            elif node.op == "call_function" and node.target is not operator.add:
                raise ValueError(f"no transpose for {node.target}")
            elif node.op not in ("placeholder", "output", "call_module", "call_function"):
                raise ValueError(f"no transpose for a {node.op} node")

    def forward(self, acts: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        out, pads = {}, {}
        for node in self.nodes:
            if node.op == "placeholder":
                out[node] = acts
            elif node.op == "output":
                logits_node = node.args[0]
            elif node.op == "call_function":
                out[node] = out[node.args[0]] + out[node.args[1]]
            else:
                m, x = self.above.get_submodule(node.target), out[node.args[0]]
                if isinstance(m, nn.ReLU6):
                    out[node] = F.hardtanh(x, 0.0, 6.0)
                elif isinstance(m, nn.ReLU):
                    out[node] = F.relu(x)
                elif isinstance(m, nn.Conv2d) and type(m).__name__ == "Conv2dSame":
                    pad = _same_padding(x, m)
                    pads[node] = pad
                    out[node] = F.conv2d(F.pad(x, pad), m.weight, m.bias, m.stride, 0, m.dilation, m.groups)
                else:
                    out[node] = m(x)
        grads = {logits_node: onehot}
        for node in reversed(self.nodes):
            g = grads.pop(node, None)
            if g is None or node.op == "placeholder":
                if node.op == "placeholder":
                    return g if g is not None else torch.zeros_like(acts)
                continue
            if node.op == "call_function":
                for arg in node.args[:2]:
                    grads[arg] = grads[arg] + g if arg in grads else g
                continue
            m, x, y = self.above.get_submodule(node.target), out[node.args[0]], out[node]
            if isinstance(m, nn.ReLU6):
                g = g * ((y > 0) & (y < 6)).to(g.dtype)
            elif isinstance(m, nn.ReLU):
                g = g * (y > 0).to(g.dtype)
            elif isinstance(m, nn.AdaptiveAvgPool2d):
                g = g.expand_as(x) / float(x.shape[-1] * x.shape[-2])
            elif isinstance(m, nn.Flatten):
                g = g.reshape(x.shape)
            elif isinstance(m, nn.Linear):
                g = g @ m.weight
            elif isinstance(m, nn.Conv2d):
                left, right, top, bottom = pads.get(node, (0, 0, 0, 0))
                padding = (0, 0) if node in pads else m.padding
                size = (x.shape[-2] + top + bottom, x.shape[-1] + left + right)
                g = _conv_transpose(g, m, padding, size)
                if node in pads:  # the gradient of the padded input: crop to the input
                    g = g[:, :, top:top + x.shape[-2], left:left + x.shape[-1]]
            grads[node.args[0]] = grads[node.args[0]] + g if node.args[0] in grads else g
        raise AssertionError("the graph has no input")


def _conv_transpose(g: torch.Tensor, conv: nn.Conv2d, padding: Sequence[int], size: Sequence[int]) -> torch.Tensor:
    """The gradient of `conv`'s input (spatial `size`, zero `padding` each side) from its output's gradient `g`,
    as a stride-1 convolution: zeros inserted between g's pixels for a stride, the kernel flipped with its input
    and output channels swapped per group. (ONNX Runtime's ConvTranspose runs these 3x3 to 12x12 maps several
    times slower than its Conv.)"""
    (sh, sw), (dh, dw), (kh, kw) = conv.stride, conv.dilation, conv.kernel_size
    n, c, h, w = g.shape
    if sh > 1:
        g = torch.stack([g] + [torch.zeros_like(g)] * (sh - 1), 3).reshape(n, c, h * sh, w)[:, :, :(h - 1) * sh + 1]
    if sw > 1:
        g = torch.stack([g] + [torch.zeros_like(g)] * (sw - 1), 4).reshape(n, c, g.shape[2], w * sw)
        g = g[..., :(w - 1) * sw + 1]
    groups, weight = conv.groups, conv.weight
    out_per, in_per = weight.shape[0] // groups, weight.shape[1]
    weight = weight.reshape(groups, out_per, in_per, kh, kw).transpose(1, 2).reshape(groups * in_per, out_per, kh, kw)
    reach = (dh * (kh - 1), dw * (kw - 1))
    top, left = reach[0] - padding[0], reach[1] - padding[1]
    bottom, right = size[0] + reach[0] - top - g.shape[2], size[1] + reach[1] - left - g.shape[3]  # out = size
    if (top, left) == (bottom, right):  # the convolution's own padding: no Pad operation
        return F.conv2d(g, weight.flip(2, 3), None, 1, (top, left), conv.dilation, groups)
    return F.conv2d(F.pad(g, (left, right, top, bottom)), weight.flip(2, 3), None, 1, 0, conv.dilation, groups)


def _same_padding(x: torch.Tensor, conv: nn.Conv2d) -> tuple[int, int, int, int]:
    """timm's Conv2dSame padding (TensorFlow's SAME) of `x`, by timm's own arithmetic: left, right, top, bottom."""
    from timm.layers.padding import get_same_padding

    pad_h, pad_w = (get_same_padding(int(size), k, s, d) for size, k, s, d in
                    zip(x.shape[-2:], conv.kernel_size, conv.stride, conv.dilation))
    return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2


class OrtGradient:
    """`_Gradient` exported to ONNX and run by ONNX Runtime on the CPU, for one activation shape (the classifier's
    input size is fixed). Checked once against autograd on real activations before it is trusted."""

    def __init__(self, above: nn.Module, acts: torch.Tensor, classes: int):
        import io
        import warnings

        import onnxruntime as ort

        program = _Gradient(copy.deepcopy(above).to(memory_format=torch.contiguous_format)).eval()
        example = (torch.zeros(1, *acts.shape[1:]), torch.zeros(1, classes))
        buffer = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():  # the TorchScript-based exporter warns that it is deprecated
            warnings.simplefilter("ignore")
            torch.onnx.export(program, example, buffer, dynamo=False, input_names=["acts", "onehot"],
                              output_names=["grads"], opset_version=17,
                              dynamic_axes={"acts": {0: "n"}, "onehot": {0: "n"}, "grads": {0: "n"}})
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = max(1, torch.get_num_threads()), 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
        self.shape = tuple(acts.shape[1:])

    def __call__(self, acts: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        feeds = {"acts": np.ascontiguousarray(acts.detach().contiguous().numpy()), "onehot": onehot.numpy()}
        return torch.from_numpy(self.session.run(None, feeds)[0])


def _trace(module: nn.Module):
    """torch.fx graph of `module` with timm's untraceable layers (Conv2dSame, ...) kept as calls."""
    import torch.fx as fx

    try:
        from timm.layers import get_notrace_functions, get_notrace_modules
        leaves, wrapped = tuple(get_notrace_modules()), tuple(f for f in get_notrace_functions() if callable(f))
    except ImportError:
        leaves, wrapped = (), ()

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, name: str) -> bool:
            return isinstance(m, leaves) or super().is_leaf_module(m, name)

    return Tracer(autowrap_functions=wrapped).trace(module)
