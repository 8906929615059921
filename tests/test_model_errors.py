"""Bad or unsupported .tflite input gives a typed error naming the file, node and op, never a crash."""
from __future__ import annotations

import numpy as np
import pytest
from tflite_edit import BuiltinOperator, TensorType, edit

import tunable
from tunable.errors import ModelFormatError, UnsupportedModelError


def _load_bytes(tmp_path, data: bytes, name="m.tflite"):
    p = tmp_path / name
    p.write_bytes(data)
    return tunable.load(p, cache=False), p


def test_missing_file(tmp_path):
    with pytest.raises(ModelFormatError, match="no such file"):
        tunable.load(tmp_path / "nope.tflite")


@pytest.mark.parametrize("data", [b"", b"hello world, not a model", bytes(64)])
def test_not_a_tflite_file(tmp_path, data):
    with pytest.raises(ModelFormatError, match="m.tflite"):
        _load_bytes(tmp_path, data)


def test_truncated(tmp_path, mlperf):
    data = mlperf["resnet8"].read_bytes()
    for cut in (16, 1000, len(data) // 2, len(data) - 7):
        with pytest.raises((ModelFormatError, UnsupportedModelError)):
            _load_bytes(tmp_path, data[:cut])


def test_float_model_explains_how_to_quantize(tmp_path, mlperf):
    def to_float(m):
        for t in m.subgraphs[0].tensors:  # activations only; the constants keep their int8 buffers
            if t.type == TensorType.INT8 and not (m.buffers[t.buffer].data is not None and
                                                  len(m.buffers[t.buffer].data)):
                t.type = TensorType.FLOAT32
                t.quantization = None
    with pytest.raises(UnsupportedModelError, match=r"float32 model.*node 0 .*CONV_2D.*Optimize.DEFAULT"):
        _load_bytes(tmp_path, edit(mlperf["resnet8"], to_float))


def test_custom_op_named(tmp_path, mlperf):
    def custom(m):
        m.operatorCodes[0].builtinCode = BuiltinOperator.CUSTOM
        m.operatorCodes[0].deprecatedBuiltinCode = BuiltinOperator.CUSTOM
        m.operatorCodes[0].customCode = "MySecretOp"
    with pytest.raises(UnsupportedModelError, match=r"m.tflite: node 0: custom op 'MySecretOp'"):
        _load_bytes(tmp_path, edit(mlperf["resnet8"], custom))


def test_unsupported_builtin_named(tmp_path, mlperf):
    def lstm(m):
        code = m.subgraphs[0].operators[-1].opcodeIndex
        m.operatorCodes[code].builtinCode = BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
        m.operatorCodes[code].deprecatedBuiltinCode = BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
    with pytest.raises(UnsupportedModelError, match=r"node 15 \(UNIDIRECTIONAL_SEQUENCE_LSTM\).*not supported"):
        _load_bytes(tmp_path, edit(mlperf["resnet8"], lstm))


def test_dynamic_shape(tmp_path, mlperf):
    def dyn(m):
        t = m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]]
        t.shapeSignature = [1, -1, -1, 3]
    with pytest.raises(UnsupportedModelError, match="dynamic shape"):
        _load_bytes(tmp_path, edit(mlperf["resnet8"], dyn))


def test_int16_activations(tmp_path, mlperf):
    def int16(m):
        sg = m.subgraphs[0]
        t = sg.tensors[sg.operators[0].outputs[0]]
        t.type = TensorType.INT16
    with pytest.raises(UnsupportedModelError, match="int16"):
        _load_bytes(tmp_path, edit(mlperf["resnet8"], int16))


def test_per_axis_on_unexpected_axis(tmp_path, mlperf):
    def axis(m):
        sg = m.subgraphs[0]
        w = sg.tensors[sg.operators[0].inputs[1]]
        w.quantization.quantizedDimension = 3
    with pytest.raises(UnsupportedModelError, match=r"node 0 \(CONV_2D\).*per axis 3"):
        _load_bytes(tmp_path, edit(mlperf["resnet8"], axis))


def test_out_of_range_tensor_index(tmp_path, mlperf):
    def bad_index(m):
        op = m.subgraphs[0].operators[2]
        op.inputs = [9999] + list(op.inputs[1:])
    with pytest.raises(ModelFormatError, match=r"node 2 .*index 9999 out of range"):
        _load_bytes(tmp_path, edit(mlperf["resnet8"], bad_index))


def test_wrong_input_dtype_and_shape(mlperf):
    m = tunable.load(mlperf["ad01"])
    s = m.session()
    with pytest.raises(tunable.InputError, match="quantize"):
        s.run(np.zeros((1, 640), np.float32))
    with pytest.raises(tunable.InputError, match=r"shape \[1, 640\]"):
        s.run(np.zeros((1, 64), np.int8))
