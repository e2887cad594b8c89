"""The onnx package's nine light models, with seeded random weights for the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def randomize_light(path: Path) -> onnx.ModelProto:
    """The light models build weights with ConstantOfShape (constant fill); give them
    seeded random values so that comparisons are meaningful (biases / BN parameters
    near 1 so BN variances stay positive)."""
    m = onnx.load(str(path))
    shapes = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    rng = np.random.default_rng(0)
    for node in m.graph.node:
        if node.op_type != "ConstantOfShape":
            continue
        shape = tuple(int(d) for d in shapes[node.input[0]])
        if len(shape) == 1:  # biases / BN params: positive, near 1 (BN variance > 0)
            arr = rng.uniform(0.5, 1.5, shape)
        else:
            arr = rng.standard_normal(shape) / np.sqrt(max(np.prod(shape[1:]), 1))
        t = numpy_helper.from_array(arr.astype(np.float32), "value")
        node.CopyFrom(helper.make_node("Constant", [], [node.output[0]], value=t))
    return m
