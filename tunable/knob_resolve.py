"""Turns a Knobs value into the runtime's per-layer knob state (tn_layer_knobs), checked against the model."""
from __future__ import annotations

import math

from .errors import KnobError
from .knobs import Knobs

_GRAN = {"element": 0, "row": 1, "channel": 2}
FC_ROLE_PLAIN, FC_ROLE_RELU, FC_ROLE_CLASSIFIER = 0, 1, 2
AIP_OFF, AIP_RELU_SKIP, AIP_TOPM, AIP_ESTIMATE_ALL = 0, 1, 2, 3


def resolve(model, knobs: Knobs, ffi):
    layers = model.layers
    knobs.check_layers({l.name: l.op for l in layers})
    arr = ffi.new("tn_layer_knobs[]", len(layers))
    for i, layer in enumerate(layers):
        k = arr[i]
        if layer.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            _drowsy(k, layer, knobs)
            if layer.op == "CONV_2D":
                _sign_knobs(k, layer, knobs, model)
        if layer.op == "FULLY_CONNECTED":
            f = knobs.layer_value("aip", layer.name)
            if f < 1.0:
                if "aip_perm" not in layer.has_inputs:
                    raise KnobError(f"aip on {layer.name}: this plan was compiled without an AIP column order")
                kdim = _fc_k(layer)
                k.aip_cols = max(1, math.ceil(f * kdim))
                role = layer.params.get("role", FC_ROLE_PLAIN)
                k.aip_mode = {FC_ROLE_RELU: AIP_RELU_SKIP, FC_ROLE_CLASSIFIER: AIP_TOPM}.get(role, AIP_OFF)
                k.aip_topm = knobs.aip_topm or 10
                k.aip_margin = knobs.aip_margin
        if layer.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            k.prune_threshold = knobs.layer_value("prune", layer.name)
            k.weight_lsb_drop = knobs.layer_value("weight_lsb_drop", layer.name)
            lut = dict(knobs.lut).get(layer.name) if knobs.lut else None
            k.lut_enable = 0 if lut is None else _lut_index(layer, lut, model)
    return arr


def _reduction(layer) -> int:
    """K of a conv layer: kernel height x width x input channels."""
    return layer.macs // max(1, math.prod(layer.output_shape))


def _fc_k(layer) -> int:
    return layer.macs // max(1, math.prod(layer.output_shape))


def _relu(layer) -> bool:
    """The conv's output cannot go below real zero (fused ReLU/ReLU6, or a range that starts at zero), or it
    feeds only an ADD whose activation clamps (a residual link: the sign knobs predict the ADD's clamp)."""
    return layer.params.get("act_min", -128) >= layer.params.get("out_zp", 0) or "residual" in layer.has_inputs


def _per_layer(knobs: Knobs, name: str) -> bool:
    v = getattr(knobs, name)
    return isinstance(v, tuple) and bool(v) and isinstance(v[0], tuple)


def _sign_knobs(k, layer, knobs: Knobs, model) -> None:
    """conv_preview and sign_exact skip the outputs that requantize to act_min. A global value applies to the
    CONV_2D layers followed by ReLU (act_min >= out_zp: the output cannot go below real zero), the only ones
    where clamping is common; a per-layer value applies where it is named. The preview prefix is the smallest
    tabulated length covering the fraction (see artefacts.preview_length)."""
    for name in ("conv_preview", "sign_exact"):
        v = knobs.layer_value(name, layer.name)
        if not v or (not _per_layer(knobs, name) and not _relu(layer)):
            continue
        if name == "conv_preview":
            from .artefacts import preview_length
            k.conv_preview_cin = preview_length(model, layer, v, _reduction(layer))
        else:
            k.sign_exact = 1
    if k.conv_preview_cin and k.sign_exact:
        raise KnobError(f"{layer.name}: conv_preview and sign_exact cannot be combined on one layer")


def _lut_index(layer, kw_ka, model=None) -> int:
    """The plan's id of look-up-table configuration (K_w, K_a) on this layer (its artefacts list them)."""
    from .artefacts import lut_index
    if model is None:
        raise KnobError(f"lut on {layer.name}: look-up tables need the loaded model")
    return lut_index(model, layer, kw_ka)


def _drowsy(k, layer, knobs: Knobs) -> None:
    p = float(knobs.layer_value("drowsy", layer.name))
    k.drowsy_granularity = _GRAN[knobs.drowsy_granularity]
    k.drowsy_rescale = int(knobs.drowsy_rescale)
    if p <= 0.0:
        return
    if knobs.drowsy_select == "importance":
        slot = "rank_channel" if knobs.drowsy_granularity == "channel" else "rank_row"
        if slot not in layer.has_inputs:
            raise KnobError(f"drowsy importance on {layer.name}: the plan has no calibration ranks; load the model "
                            "with calibration data (tunable.load(path, calibration=...))")
        cout = layer.output_shape[-1]
        units = cout if knobs.drowsy_granularity == "channel" else layer.output_shape[1] * cout
        k.drowsy_select = 1
        k.drowsy_drop_count = int(math.floor(p * units + 1e-9))
    else:
        k.drowsy_threshold = min(int(round(p * 2.0**32)), 2**32 - 1)
