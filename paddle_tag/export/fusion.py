"""CPU speed-ups for the paddle2onnx ERNIE graph: exact rewrites, checked by the export's parity run.

- :func:`prune_to_cls`: with ``cls`` pooling only token 0 of the last layer reaches the logits, so that
  layer's query projection, attention output, residual, feed-forward and LayerNorms are computed for
  token 0 alone (keys and values still see every token). One ``Slice`` node, standard ONNX operators:
  the result is the same function, and works on every runtime.
- :func:`fuse_attention`: ONNX Runtime's transformer optimiser finds no ``Attention`` pattern in the
  paddle2onnx graph (it expects PyTorch/TF exports), so each self-attention block — three projections,
  reshape/transpose, scaled ``Q·Kᵀ`` plus padding mask, ``Softmax``, ``·V``, transpose/reshape — is
  replaced by one ``com.microsoft.Attention`` node (packed QKV weights; the 0/1 padding mask as
  ``mask_index``; ``scale`` and ``mask_filter_value`` read from the graph's constants). Contrib ops run
  on ONNX Runtime only, so this graph is used for the CPU INT8 variant, where ``quantize_dynamic`` turns
  each ``Attention`` into one ``QAttention`` (one INT8 GEMM for Q, K and V).

Every match is checked node by node (op types, permutations, constants, that no intermediate tensor is
used elsewhere); a block that does not match exactly is left as it is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MS_DOMAIN = "com.microsoft"


class Graph:
    """Producer/consumer index over an ONNX graph (rebuilt after each edit)."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.graph = model.graph
        self.refresh()

    def refresh(self) -> None:
        self.producer = {out: node for node in self.graph.node for out in node.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.inits = {init.name: init for init in self.graph.initializer}
        self.outputs = {out.name for out in self.graph.output}

    def const(self, name: str) -> Optional[np.ndarray]:
        """Value of an initializer or ``Constant`` node output, else None."""
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
        return None

    def parent(self, node: onnx.NodeProto, index: int, op_type: str) -> Optional[onnx.NodeProto]:
        if index >= len(node.input):
            return None
        found = self.producer.get(node.input[index])
        return found if found is not None and found.op_type == op_type else None

    def users(self, name: str) -> list[onnx.NodeProto]:
        return self.consumers.get(name, [])

    def private(self, node: onnx.NodeProto) -> bool:
        """Each output of ``node`` has exactly one consumer and is not a graph output."""
        return all(len(self.users(o)) == 1 and o not in self.outputs for o in node.output)


def attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def remove_dead_nodes(model: onnx.ModelProto) -> int:
    """Drop nodes none of whose outputs is used (paddle2onnx leaves ``Shape → Slice`` stubs), and unused
    initializers. Returns the number of nodes removed."""
    graph = model.graph
    needed = {out.name for out in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node.input)
    removed = len(graph.node) - len(keep)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    unused = [init for init in graph.initializer if init.name not in needed]
    for init in unused:
        graph.initializer.remove(init)
    return removed


@dataclass
class AttentionBlock:
    """One matched self-attention block of the paddle2onnx ERNIE graph."""

    x: str                  # hidden states in (B, S, H)
    out: str                # attention context out (B, S, H), before the output projection
    weights: list[np.ndarray]  # Wq, Wk, Wv (H, H)
    biases: list[np.ndarray]   # bq, bk, bv (H,)
    num_heads: int
    scale: float
    mask: Optional[str]        # the 0/1 (1 = token) float mask before its unsqueeze, or None
    mask_filter_value: float
    q_matmul: onnx.NodeProto
    nodes: list[onnx.NodeProto]  # every node the fused op replaces


def _projection(g: Graph, transpose: onnx.NodeProto, perm: list[int]):
    """``Transpose(perm) ← Reshape([0, 0, heads, head_dim]) ← Add(bias) ← MatMul(x, W)``."""
    if attr(transpose, "perm") != perm:
        return None
    reshape = g.parent(transpose, 0, "Reshape")
    add = reshape and g.parent(reshape, 0, "Add")
    if add is None:
        return None
    shape = g.const(reshape.input[1])
    for mm_index in (0, 1):
        matmul = g.parent(add, mm_index, "MatMul")
        bias = g.const(add.input[1 - mm_index])
        if matmul is not None and bias is not None:
            break
    else:
        return None
    weight = g.const(matmul.input[1])
    if weight is None or weight.ndim != 2 or bias.ndim != 1 or shape is None or shape.tolist()[:2] != [0, 0] \
            or len(shape) != 4 or int(shape[2]) * int(shape[3]) != weight.shape[1] != bias.shape[0]:
        return None
    if not all(g.private(n) for n in (matmul, add, reshape)):
        return None
    return matmul.input[0], weight, bias, int(shape[2]), [matmul, add, reshape, transpose], matmul


def _mask(g: Graph, name: str):
    """The additive mask ``((m * a) + b) * c`` (after ``Unsqueeze`` to (B, 1, 1, S)) → (m, value at m=0).

    Requires value 0 where m = 1 (tokens) so that ``mask_index`` = m reproduces it exactly.
    """
    mul2 = g.producer.get(name)
    if mul2 is None or mul2.op_type != "Mul":
        return None
    c = g.const(mul2.input[1])
    add = g.parent(mul2, 0, "Add")
    mul1 = add and g.parent(add, 0, "Mul")
    unsq = mul1 and g.parent(mul1, 0, "Unsqueeze")
    if c is None or unsq is None or c.size != 1:
        return None
    a, b = g.const(mul1.input[1]), g.const(add.input[1])
    axes = g.const(unsq.input[1]) if len(unsq.input) > 1 else np.array(attr(unsq, "axes", []))
    if a is None or b is None or a.size != 1 or b.size != 1 or axes is None or axes.tolist() != [1, 2]:
        return None
    a, b, c = float(a.reshape(())), float(b.reshape(())), float(c.reshape(()))
    if (a + b) * c != 0.0:
        return None
    return unsq.input[0], b * c


def match_attention(g: Graph, softmax: onnx.NodeProto) -> Optional[AttentionBlock]:
    """The paddle2onnx self-attention block around ``softmax``, or None."""
    if attr(softmax, "axis", -1) not in (-1, 3):
        return None
    add_mask = g.parent(softmax, 0, "Add")
    scores = add_mask and g.parent(add_mask, 0, "MatMul")
    if scores is None:
        return None
    mask = _mask(g, add_mask.input[1])
    q_mul = g.parent(scores, 0, "Mul")
    k_t = g.parent(scores, 1, "Transpose")
    q_t = q_mul and g.parent(q_mul, 0, "Transpose")
    scale = q_mul is not None and g.const(q_mul.input[1])
    if mask is None or k_t is None or q_t is None or scale is None or np.size(scale) != 1:
        return None
    users = g.users(softmax.output[0])
    context = users[0] if len(users) == 1 and users[0].op_type == "MatMul" and users[0].input[0] == softmax.output[0] \
        else None
    v_t = context and g.parent(context, 1, "Transpose")
    out_t = context and len(g.users(context.output[0])) == 1 and g.users(context.output[0])[0]
    out_r = out_t and out_t.op_type == "Transpose" and len(g.users(out_t.output[0])) == 1 \
        and g.users(out_t.output[0])[0]
    if not v_t or not out_r or out_r.op_type != "Reshape" or attr(out_t, "perm") != [0, 2, 1, 3]:
        return None
    q = _projection(g, q_t, [0, 2, 1, 3])
    k = _projection(g, k_t, [0, 2, 3, 1])
    v = _projection(g, v_t, [0, 2, 1, 3])
    if q is None or k is None or v is None or not (q[0] == k[0] == v[0]) or not (q[3] == k[3] == v[3]):
        return None
    hidden = q[1].shape[1]
    out_shape = g.const(out_r.input[1])
    if out_shape is None or out_shape.tolist() not in ([0, 0, hidden], [0, 0, -1]):
        return None
    inner = [q_mul, scores, add_mask, softmax, context, out_t]
    if not all(g.private(n) for n in inner):
        return None
    return AttentionBlock(x=q[0], out=out_r.output[0], weights=[q[1], k[1], v[1]], biases=[q[2], k[2], v[2]],
                          num_heads=q[3], scale=float(np.reshape(scale, ())), mask=mask[0],
                          mask_filter_value=mask[1], q_matmul=q[5],
                          nodes=q[4] + k[4] + v[4] + inner + [out_r])


def attention_blocks(model: onnx.ModelProto) -> list[AttentionBlock]:
    """Every matched attention block, in graph order."""
    g = Graph(model)
    return [b for b in (match_attention(g, n) for n in model.graph.node if n.op_type == "Softmax") if b]


def fuse_attention(model: onnx.ModelProto) -> int:
    """Replace each matched block by ``com.microsoft.Attention``, in place; return how many."""
    blocks = attention_blocks(model)
    if not blocks:
        return 0
    graph = model.graph
    drop = {id(n) for b in blocks for n in b.nodes}
    mask_ids: dict[str, str] = {}
    new_nodes: list[onnx.NodeProto] = []
    new_inits: list[onnx.TensorProto] = []
    by_out = {b.nodes[-1].output[0]: b for b in blocks}
    for node in graph.node:
        block = by_out.get(node.output[0]) if node.output else None
        if block is not None:
            index = len(new_inits) // 2
            w = np.concatenate(block.weights, axis=1).astype(np.float32)
            b = np.concatenate(block.biases).astype(np.float32)
            w_name, b_name = f"fused_attention_{index}.qkv_w", f"fused_attention_{index}.qkv_b"
            new_inits += [numpy_helper.from_array(w, w_name), numpy_helper.from_array(b, b_name)]
            if block.mask not in mask_ids:
                mask_ids[block.mask] = f"{block.mask}.int32"
                new_nodes.append(helper.make_node("Cast", [block.mask], [mask_ids[block.mask]], to=TensorProto.INT32,
                                                  name=f"fused_attention_mask_{len(mask_ids)}"))
            new_nodes.append(helper.make_node(
                "Attention", [block.x, w_name, b_name, mask_ids[block.mask]], [block.out],
                name=f"fused_attention_{index}", domain=MS_DOMAIN, num_heads=block.num_heads,
                scale=block.scale, mask_filter_value=block.mask_filter_value))
        elif id(node) not in drop:
            new_nodes.append(node)
    graph.initializer.extend(new_inits)
    # ONNX shape inference does not know contrib ops: declare each output's type (float, (B, S, H)) so the
    # checker and the quantiser can type everything downstream.
    declared = {info.name for info in graph.value_info}
    for block in blocks:
        if block.out not in declared:
            graph.value_info.append(helper.make_tensor_value_info(
                block.out, TensorProto.FLOAT, [None, None, block.weights[0].shape[1]]))
    del graph.node[:]
    graph.node.extend(toposort(new_nodes, graph))
    if not any(op.domain == MS_DOMAIN for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    remove_dead_nodes(model)
    return len(blocks)


def toposort(nodes: list[onnx.NodeProto], graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Stable topological order of ``nodes`` (original order where possible)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(nodes), []
    while pending:
        rest = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"graph has a cycle or a missing input near {rest[0].name or rest[0].op_type}")
        pending = rest
    return ordered


def prune_to_cls(model: onnx.ModelProto) -> bool:
    """Compute the last layer for token 0 only when the logits read token 0 alone; in place.

    Checked: the last attention block's input feeds only its Q/K/V projections and one residual ``Add``
    (whose other input is the block's output through ``MatMul``/``Add`` by constants), and from that
    residual on, everything is per-token until ``Slice(axis=1, 0:1)`` or ``Gather(axis=1, 0)`` takes the
    first token, and nothing else reaches the graph output. Returns whether the graph was changed.
    """
    remove_dead_nodes(model)
    blocks = attention_blocks(model)
    if not blocks:
        return False
    g = Graph(model)
    last = blocks[-1]
    users = g.users(last.x)
    matmuls = [n for n in users if n.op_type == "MatMul"]
    residuals = [n for n in users if n.op_type == "Add"]
    if len(matmuls) != 3 or len(residuals) != 1 or len(users) != 4 \
            or not any(n is last.q_matmul for n in matmuls):
        return False
    residual = residuals[0]
    other = residual.input[1] if residual.input[0] == last.x else residual.input[0]
    if not _const_chain(g, other, last.out) or not _reads_token0_only(g, residual):
        return False
    token0 = f"{last.x}.token0"
    starts, ends, axes = (f"{token0}.{k}" for k in ("starts", "ends", "axes"))
    model.graph.initializer.extend([numpy_helper.from_array(np.array([v], np.int64), n)
                                    for v, n in ((0, starts), (1, ends), (1, axes))])
    slice_node = helper.make_node("Slice", [last.x, starts, ends, axes], [token0], name="cls_token_slice")
    for node in (last.q_matmul, residual):
        node.input[:] = [token0 if name == last.x else name for name in node.input]
    nodes = list(model.graph.node)
    nodes.insert(nodes.index(last.q_matmul), slice_node)
    del model.graph.node[:]
    model.graph.node.extend(toposort(nodes, model.graph))
    return True


def _const_chain(g: Graph, name: str, target: str) -> bool:
    """``name`` is ``target`` through ``MatMul``/``Add`` nodes whose other input is a constant."""
    for _ in range(8):
        if name == target:
            return True
        node = g.producer.get(name)
        if node is None or node.op_type not in ("MatMul", "Add"):
            return False
        if g.const(node.input[1]) is not None:
            name = node.input[0]
        elif node.op_type == "Add" and g.const(node.input[0]) is not None:
            name = node.input[1]
        else:
            return False
    return False


_ROWWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "ReduceMean", "MatMul", "Erf", "LayerNormalization",
            "Gelu", "BiasGelu", "Reshape"}


def _reads_token0_only(g: Graph, start: onnx.NodeProto) -> bool:
    """From ``start`` on, every op is per-token until a ``Slice``/``Gather`` of token 0 on axis 1.

    Per-token ops: element-wise with constants or with tensors of the same region, reductions over the
    last axis, ``MatMul`` by a constant weight, ``Reshape`` keeping dims 0 and 1. No graph output may be
    reached before the token-0 selection.
    """
    region, frontier, ends = {}, [start], []
    while frontier:
        node = frontier.pop()
        if id(node) in region or any(node is e for e in ends):
            continue
        if node.op_type in ("Slice", "Gather"):
            ends.append(node)
            continue
        region[id(node)] = node
        for out in node.output:
            if out in g.outputs:
                return False
            frontier.extend(g.users(out))
    if not ends:
        return False
    produced = {out for node in region.values() for out in node.output}
    for node in ends:
        if node.input[0] not in produced:
            return False
        if node.op_type == "Slice":
            starts, stop = g.const(node.input[1]), g.const(node.input[2])
            axes = g.const(node.input[3]) if len(node.input) > 3 else None
            steps = g.const(node.input[4]) if len(node.input) > 4 else np.array([1])
            if starts is None or stop is None or axes is None or steps is None or starts.tolist() != [0] \
                    or stop.tolist() != [1] or axes.tolist() != [1] or steps.tolist() != [1]:
                return False
        else:
            index = g.const(node.input[1])
            if attr(node, "axis", 0) != 1 or index is None or index.size != 1 or int(index.reshape(())) != 0:
                return False
    for node in region.values():
        if node.op_type not in _ROWWISE:
            return False
        if node is not start and any(name not in produced and g.const(name) is None for name in node.input):
            return False
        if node.op_type == "ReduceMean" and attr(node, "axes") not in ([-1], [2]):
            return False
        if node.op_type in ("Reshape", "MatMul"):
            second = g.const(node.input[1])
            if second is None or (node.op_type == "Reshape" and second.tolist()[:2] != [0, 0]):
                return False
    return True
