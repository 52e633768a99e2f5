"""Multiply-adds of the convolutions and matrix products a TF1 graph computes.

One counter for `bench/bench.py` (its GFLOP/img column) and `cards.py` (the multiply-adds of
the architecture cards): both read the ops of the graph itself, so a fused formulation counts
the same work as the literal one, and a card's per-stage figures add up to bench's forward total.
Element-wise ops (batch norm, ReLU, additions, pooling) are not counted, as in the papers' tables.
"""
from __future__ import division

CONV_TYPES = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")


def _dims(tensor):
    """Static shape with the unknown batch dimension (None) taken as 1: a per-image count."""
    shape = tensor.get_shape()
    if shape.ndims is None:
        return None
    return [d if d is not None else 1 for d in shape.as_list()]


def op_flops(op):
    """FLOPs per image (2 x multiply-adds) of one Conv2D, conv backprop or MatMul op; 0 for any other op."""
    t = op.type
    if t == "MatMul":
        a, b = _dims(op.inputs[0]), _dims(op.inputs[1])
        if a is None or b is None:
            return 0
        m, k = (a[1], a[0]) if op.get_attr("transpose_a") else (a[0], a[1])
        n = b[0] if op.get_attr("transpose_b") else b[1]
        return 2 * m * k * n
    if t == "Conv2D":
        out, kernel = _dims(op.outputs[0]), _dims(op.inputs[1])
    elif t == "Conv2DBackpropInput":
        out, kernel = _dims(op.inputs[2]), _dims(op.inputs[1])
    elif t == "Conv2DBackpropFilter":
        out, kernel = _dims(op.inputs[2]), _dims(op.outputs[0])
    else:
        return 0
    if out is None or kernel is None:
        return 0
    return 2 * out[1] * out[2] * out[3] * kernel[0] * kernel[1] * kernel[2]


def is_forward(op):
    """A forward conv or matmul: not one of the ops tf.gradients adds (they live under gradients/)."""
    return op.type in ("Conv2D", "MatMul") and not op.name.startswith("gradients")


def count_flops(graph):
    """(forward, training) FLOPs per image: 2 x multiply-adds of the graph's conv and matmul ops.

    An op whose output nothing reads is left out (a step never runs it). The trainer's
    `minimize` gates each op's gradients together (GATE_OP), which reads, and so runs, even
    the first conv's input gradient: it is counted.
    """
    fwd = train = 0
    for op in graph.get_operations():
        if not any(out.consumers() for out in op.outputs) and not op._control_outputs:
            continue
        flops = op_flops(op)
        train += flops
        if is_forward(op):
            fwd += flops
    return fwd, train
