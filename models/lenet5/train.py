"""Knob-aware training of LeNet-5 on MNIST, exported full-int8 (the project's bundled model).

Usage (training needs the `train` extra, TensorFlow; evaluation needs only the project env):
  nice -n 10 python models/lenet5/train.py train --epochs 20 --out models/lenet5_mnist_int8.tflite
  python models/lenet5/train.py simulate --workdir /tmp/tunable_lenet5    # float drowsy / AIP / LUT sweeps
  python models/lenet5/train.py eval --model models/lenet5_mnist_int8.tflite   # TFLM + engine, 10k test

Data: $TUNABLE_SHARED/data/mnist (IDX gz). Training uses the 60k training images only; the 10k test set is
for reporting (the last epoch is exported, no checkpoint is picked on test accuracy).
Preprocessing: float input = pixel / 255 (0..1), shape (1, 28, 28, 1); the int8 input has scale 1/255 and zero
point -128, i.e. int8 = pixel - 128. See models/lenet5/README.md for the recipe and the measured numbers.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common_train as ct  # noqa: E402

DEFAULT_OUT = ct.REPO / "models" / "lenet5_mnist_int8.tflite"


def column_group_lasso(lam: float):
    """lam * sum_j ||W[j, :]||_2 over a Dense kernel (in, out): drives whole input columns of the FC layer
    towards zero, so the importance-ranked first few columns carry most of every dot product and AIP's
    preview over 1/8..1/16 of the columns predicts the sign well."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="tunable")
    def reg(w):
        return lam * ops.sum(ops.sqrt(ops.sum(ops.square(w), axis=1) + 1e-12))
    return reg


_PREVIEW_DENSE = None


def preview_dense_class():
    """PreviewDense: a ReLU Dense layer trained for AIP (knob-aware training of the FC stack).

    In training it also forms AIP's preview the way the engine does: the k = ceil(f*N) input columns of
    largest importance mean|x_j| * ||W[j, :]||_1 (on the batch; the engine uses calibration data), their partial
    dot product scaled by N/k, plus bias. Then
    - an auxiliary loss aux * mean((est - y)^2) teaches the top columns to predict the full pre-activation y;
    - on a fraction p_gate of the batches, rows whose estimate is negative are zeroed (the engine skips them),
      so the layers after learn to live with the skips (the gate passes no gradient).
    f is drawn per batch from `fracs`. At inference the layer is a plain Dense (FULLY_CONNECTED + fused ReLU)."""
    global _PREVIEW_DENSE
    if _PREVIEW_DENSE is not None:
        return _PREVIEW_DENSE
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="tunable")
    class PreviewDense(keras.layers.Dense):
        def __init__(self, units, fracs=(1 / 4, 1 / 8, 1 / 16), p_gate=0.5, aux=0.0, seed=0, **kw):
            super().__init__(units, **kw)
            self.fracs, self.p_gate, self.aux, self.seed = tuple(fracs), float(p_gate), float(aux), int(seed)
            self.seed_gen = keras.random.SeedGenerator(seed)

        def call(self, x, training=None):
            if not training or (self.aux == 0 and self.p_gate == 0):
                return super().call(x)
            w, b = self.kernel, self.bias
            n = x.shape[-1]
            y = tf.matmul(x, w) + b
            imp = tf.stop_gradient(tf.reduce_mean(tf.abs(x), 0) * tf.reduce_sum(tf.abs(w), 1))
            ks = tf.constant([math.ceil(f * n) for f in self.fracs], tf.int32)
            pick = keras.random.randint((), 0, len(self.fracs), seed=self.seed_gen)
            k = tf.gather(ks, pick)
            idx = tf.math.top_k(imp, k=k, sorted=False).indices
            est = tf.matmul(tf.gather(x, idx, axis=1), tf.gather(w, idx, axis=0)) * (n / tf.cast(k, x.dtype)) + b
            if self.aux > 0:
                self.add_loss(self.aux * tf.reduce_mean(tf.square(est - tf.stop_gradient(y))))
            out = tf.nn.relu(y)
            if self.p_gate > 0:
                use = keras.random.uniform((), seed=self.seed_gen) < self.p_gate
                gate = tf.stop_gradient(tf.cast(est >= 0, x.dtype))
                out = tf.where(use, out * gate, out)
            return out

        def get_config(self):
            cfg = super().get_config()
            cfg.update(fracs=list(self.fracs), p_gate=self.p_gate, aux=self.aux, seed=self.seed)
            return cfg

    _PREVIEW_DENSE = PreviewDense
    return PreviewDense


def build_lenet5(seed: int, fc_dropout: float, act_l1: float, group_l1: float = 0.0, fc3_dropout: float | None = None,
                 aip_aux: float = 0.0, aip_gate: float = 0.0, aip_fracs=(1 / 4, 1 / 8, 1 / 16)):
    """Classic LeNet-5: conv 6@5x5 'same' + ReLU + maxpool, conv 16@5x5 'valid' + ReLU + maxpool, FC 120, FC 84,
    FC 10, softmax; ReLU everywhere. A KnobDropout follows each conv output (what the drowsy knob drops);
    standard (inverted) dropout precedes every FC layer, which is what AIP's scaled preview over a subset of
    the inputs imitates; an optional L1 activity penalty on the hidden FC outputs makes them sparser, so more
    rows can be skipped once the preview predicts ReLU-negative."""
    import keras
    from keras import layers
    KD = ct.knob_dropout_class()
    act_reg = keras.regularizers.l1(act_l1) if act_l1 > 0 else None
    col_reg = column_group_lasso(group_l1) if group_l1 > 0 else None
    fc3_dropout = fc_dropout if fc3_dropout is None else fc3_dropout
    inp = keras.Input((28, 28, 1), name="image")
    x = layers.Conv2D(6, 5, padding="same", activation="relu")(inp)
    x = KD(seed=seed * 1000 + 1, name="drowsy_1")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(16, 5, padding="valid", activation="relu")(x)
    x = KD(seed=seed * 1000 + 2, name="drowsy_2")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(fc_dropout, seed=seed * 1000 + 3)(x)
    PD = preview_dense_class()
    x = PD(120, activation="relu", activity_regularizer=act_reg, kernel_regularizer=col_reg, name="fc1",
           aux=aip_aux, p_gate=aip_gate, fracs=aip_fracs, seed=seed * 1000 + 6)(x)
    x = layers.Dropout(fc_dropout, seed=seed * 1000 + 4)(x)
    x = PD(84, activation="relu", activity_regularizer=act_reg, kernel_regularizer=col_reg, name="fc2",
           aux=aip_aux, p_gate=aip_gate, fracs=aip_fracs, seed=seed * 1000 + 7)(x)
    x = layers.Dropout(fc3_dropout, seed=seed * 1000 + 5)(x)
    x = layers.Dense(10, name="fc3")(x)
    out = layers.Softmax()(x)
    return keras.Model(inp, out, name="lenet5_drowsy")


def preprocess(x_u8: np.ndarray) -> np.ndarray:
    return (x_u8.astype(np.float32) / 255.0)[..., None]


def shift_augment(x: np.ndarray, rng: np.random.Generator, pad: int = 2) -> np.ndarray:
    """Random translation by up to `pad` pixels (zero fill), on uint8 (N, 28, 28) batches."""
    n, h, w = x.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    dy = rng.integers(0, 2 * pad + 1, n)
    dx = rng.integers(0, 2 * pad + 1, n)
    rows = dy[:, None] + np.arange(h)[None, :]
    cols = dx[:, None] + np.arange(w)[None, :]
    return xp[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def cmd_train(a) -> None:
    tf, keras = ct.setup_tf(a.seed, a.threads)
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr = ct.load_mnist("train")
    x_te, y_te = ct.load_mnist("test")
    x_te_f = preprocess(x_te)
    model = build_lenet5(a.seed, a.fc_dropout, a.act_l1, a.group_l1, a.fc3_dropout, a.aip_aux, a.aip_gate,
                         tuple(a.aip_fracs))
    steps = len(x_tr) // a.batch
    total = steps * a.epochs
    opt = keras.optimizers.Adam(learning_rate=a.lr)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ctrl = ct.KnobDropoutController(model, max_rate=a.max_rate, p_off=a.p_off, p_shared=a.p_shared,
                                      gran_probs=tuple(a.gran_probs), ramp_steps=a.ramp_epochs * steps, seed=a.seed)
    history = []
    for epoch in range(a.epochs):
        rng = np.random.default_rng([a.seed, epoch])
        perm = rng.permutation(len(x_tr))
        ctrl.set_epoch_rng(epoch)
        t0 = time.time()
        losses = []
        for b in range(steps):
            idx = perm[b * a.batch:(b + 1) * a.batch]
            xb = preprocess(shift_augment(x_tr[idx], rng) if a.shift else x_tr[idx])
            # cosine decay to zero
            opt.learning_rate = 0.5 * a.lr * (1 + math.cos(math.pi * (epoch * steps + b) / total))
            ctrl.before_batch()
            logs = model.train_on_batch(xb, y_tr[idx].astype(np.int32), return_dict=True)
            losses.append(logs["loss"])
        ct.set_knob_dropout(model, 0.0)
        test = float(np.mean(np.argmax(model.predict(x_te_f, batch_size=1000, verbose=0), 1) == y_te))
        rec = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "test_float_clean": test,
               "seconds": round(time.time() - t0, 1)}
        history.append(rec)
        ct.log(json.dumps(rec))
        ct.write_json(work / "history.json", history)
        model.save_weights(str(work / "final.weights.h5"))
    rng = np.random.default_rng(a.seed + 7)
    calib = preprocess(x_tr[rng.permutation(len(x_tr))[:a.calib]])
    info = ct.export_int8(model, calib, Path(a.out), n_calib=a.calib)
    ct.log(f"exported {a.out}: {json.dumps({k: v for k, v in info.items() if k != 'ops'})}")
    ct.log(f"ops: {info['ops']}")
    info["tflite_interpreter_top1_test10k"] = ct.tflite_interp_top1(Path(a.out), x_te_f, y_te)
    ct.log(f"int8 top-1 (TF Lite interpreter), MNIST test 10k: {info['tflite_interpreter_top1_test10k']:.4f}")
    ct.write_json(work / "export.json", info)
    ct.write_json(work / "args.json", vars(a) | {"fn": None})


# ----------------------------------------------------------------------------------- float knob sims

def fc_stack(model):
    """(W, b) of fc1, fc2, fc3 as numpy, W shaped (in, out) as Keras stores it."""
    return [tuple(np.asarray(v) for v in model.get_layer(n).weights) for n in ("fc1", "fc2", "fc3")]


def aip_float(feats: np.ndarray, calib_feats: np.ndarray, fcs, y: np.ndarray, f: float, margin: float = 0.0,
              top_m: int = 10) -> tuple[float, float]:
    """Float simulation of the engine's AIP knob (docs/knobs.md) on the FC stack of LeNet-5.
    Columns ranked by E|x_j| * ||W[:, j]||_1 on calibration inputs; preview over the first ceil(f*N) columns
    scaled by N/|S|; hidden layers (ReLU): rows estimated below -margin emit 0, the others are computed exactly;
    the classifier completes its top_m rows (all 10 here). Returns (top-1, fraction of FC weight bytes saved)."""
    x, xc = feats, calib_feats
    fetched, full = 0.0, 0.0
    for li, (w, b) in enumerate(fcs):
        n_in, n_out = w.shape
        k = math.ceil(f * n_in)
        imp = np.mean(np.abs(xc), 0) * np.sum(np.abs(w), 1)
        order = np.argsort(-imp, kind="stable")
        s = order[:k]
        est = x[:, s] @ w[s] * (n_in / k) + b
        exact = x @ w + b
        full += n_in * n_out
        if li < len(fcs) - 1:
            keep = est >= -margin
            out = np.where(keep, np.maximum(exact, 0), 0.0)
            fetched += np.mean(n_out * k + keep.sum(1) * (n_in - k))
            xc = np.maximum(xc @ w + b, 0)
        else:
            m = min(top_m, n_out)
            top = np.argsort(-est, 1)[:, :m]
            rows = np.arange(len(x))[:, None]
            out = est.copy()
            out[rows, top] = exact[rows, top]
            fetched += n_out * k + m * (n_in - k)
        x = out
    return float(np.mean(np.argmax(x, 1) == y)), 1.0 - fetched / full


def lut_weights_int8(w: np.ndarray, k: int, iters: int = 30) -> np.ndarray:
    """The engine's lut(K_w) on one layer, in float: per-output-channel int8 weights (TFLite's symmetric
    quantization, channel = last axis in Keras) snapped to a per-layer codebook of k int8 levels (1-D k-means)."""
    s = np.max(np.abs(w), axis=tuple(range(w.ndim - 1)), keepdims=True) / 127.0
    s = np.where(s == 0, 1.0, s)
    q = np.clip(np.round(w / s), -127, 127)
    vals = q.ravel()
    cent = np.quantile(vals, (np.arange(k) + 0.5) / k)
    for _ in range(iters):
        a = np.argmin(np.abs(vals[:, None] - cent[None, :]), 1)
        for j in range(k):
            if np.any(a == j):
                cent[j] = vals[a == j].mean()
    cent = np.round(cent)
    a = np.argmin(np.abs(vals[:, None] - cent[None, :]), 1)
    return (cent[a].reshape(q.shape) * s).astype(np.float32)


def cmd_simulate(a) -> None:
    tf, keras = ct.setup_tf(a.seed, a.threads)
    work = Path(a.workdir)
    targs = json.loads((work / "args.json").read_text()) if (work / "args.json").exists() else {}
    model = build_lenet5(a.seed, targs.get("fc_dropout", 0.5), targs.get("act_l1", 0.0), targs.get("group_l1", 0.0),
                         targs.get("fc3_dropout"), targs.get("aip_aux", 0.0), targs.get("aip_gate", 0.0),
                         tuple(targs.get("aip_fracs", (1 / 4, 1 / 8, 1 / 16))))
    model.load_weights(str(work / "final.weights.h5"))
    x_te, y_te = ct.load_mnist("test")
    x_tr, _ = ct.load_mnist("train")
    x = preprocess(x_te)
    res = {"clean": float(np.mean(np.argmax(model.predict(x, batch_size=1000, verbose=0), 1) == y_te))}
    ct.log(f"float clean top-1 {res['clean']:.4f}")
    for g in ct.GRANULARITIES:
        for p in a.rates:
            acc = ct.simulate_drowsy(model, x, y_te, p, g, batch=1000)
            res[f"drowsy_{g}@{p}"] = acc
            ct.log(f"drowsy {g:8s} p={p:.2f}: {acc:.4f}")
    flat = keras.Model(model.inputs, model.get_layer("fc1").input)
    feats = np.asarray(flat.predict(x, batch_size=1000, verbose=0))
    cfeats = np.asarray(flat.predict(preprocess(x_tr[:2000]), batch_size=1000, verbose=0))
    fcs = fc_stack(model)
    for f in (1 / 4, 1 / 8, 1 / 16):
        for margin in (0.0,):
            acc, saved = aip_float(feats, cfeats, fcs, y_te, f, margin)
            res[f"aip_f{f:.4f}_m{margin}"] = {"top1": acc, "fc_weight_bytes_saved": saved}
            ct.log(f"aip f=1/{round(1 / f)} margin {margin}: top-1 {acc:.4f}, FC weight bytes saved {saved:.3f}")
    h1 = np.maximum(feats @ fcs[0][0] + fcs[0][1], 0)
    h2 = np.maximum(h1 @ fcs[1][0] + fcs[1][1], 0)
    res["fc1_zero_frac"], res["fc2_zero_frac"] = float(np.mean(h1 == 0)), float(np.mean(h2 == 0))
    ct.log(f"ReLU zeros: fc1 {res['fc1_zero_frac']:.3f}, fc2 {res['fc2_zero_frac']:.3f}")
    orig = [[np.asarray(v) for v in l.weights] for l in model.layers]
    for kw in (16, 8, 4):
        for l in model.layers:
            if l.weights and type(l).__name__ in ("Conv2D", "Dense"):
                w, b = l.get_weights()
                l.set_weights([lut_weights_int8(w, kw), b])
        acc = float(np.mean(np.argmax(model.predict(x, batch_size=1000, verbose=0), 1) == y_te))
        res[f"lut_kw{kw}"] = acc
        ct.log(f"lut K_w={kw} (all layers, float sim): {acc:.4f}")
        for l, ws in zip(model.layers, orig):
            if ws:
                l.set_weights(ws)
    ct.write_json(work / "simulate.json", res)


def cmd_eval(a) -> None:
    x_te, y_te = ct.load_mnist("test")
    if a.n:
        x_te, y_te = x_te[:a.n], y_te[:a.n]
    res = ct.evaluate_int8(Path(a.model), preprocess(x_te), y_te)
    res.update(dataset=f"MNIST t10k (first {len(y_te)})", sha256=ct.sha256_file(Path(a.model)),
               ops=ct.tflite_ops(Path(a.model)))
    print(json.dumps(res, indent=2))


def cmd_knobs(a) -> None:
    """Accuracy and savings of the engine's knobs on the int8 model (project env, no TensorFlow), through the
    code `tunable eval` runs (tunable.evaluate), so every row equals

        tunable eval MODEL --data mnist:$TUNABLE_SHARED/data/mnist:test --calib mnist:$TUNABLE_SHARED/data/mnist:train
                     --calib-limit 512 --knobs "aip=1/8"

    and bench/knobs.py section C: the plan is calibrated on the FIRST `--calib` (512, tunable eval's
    --calib-limit default) MNIST training images (AIP column orders, drowsy importance ranks); the evaluation
    split is never used for calibration. Savings are counter deltas against knobs off on the same inputs:
    conv MACs and FC weight bytes (weight payload fetched by the three FULLY_CONNECTED layers)."""
    import tunable
    from tunable.data import open_dataset
    from tunable.evaluate import Evaluator, load_model, prepare_inputs, preprocess_options_for
    from tunable.knobs import Knobs
    from tunable.paths import shared_dir

    mnist = shared_dir() / "data" / "mnist"
    opts = preprocess_options_for(a.model)
    plain = tunable.load(a.model)
    xc, _ = prepare_inputs(plain, open_dataset(f"mnist:{mnist}:train"), opts, limit=a.calib)
    model = load_model(a.model, xc)
    x, y = prepare_inputs(model, open_dataset(f"mnist:{mnist}:test"), opts, limit=a.n or None)
    ev = Evaluator(model, x, y)
    settings = [Knobs()]
    for f in a.aip:
        for margin in a.aip_margin:
            settings.append(Knobs(aip=f, aip_margin=margin))
    for g in ("element", "row", "channel"):
        for p in a.drowsy:
            settings.append(Knobs(drowsy=p, drowsy_granularity=g))
    print(f"plan calibrated on the first {len(xc)} MNIST training images; evaluated on {len(y)} test images")
    off = ev.reference()
    rows = []
    for k in settings:
        r = off if k.is_off else ev.evaluate(k, agreement=False)
        rows.append({"knobs": k.to_dict(), "knobs_text": str(k), "top1": r.top1,
                     "delta_top1_points": 100 * (r.top1 - off.top1), "conv_macs": r.conv_macs,
                     "conv_macs_saved": r.conv_macs_saved, "fc_weight_bytes": r.fc_weight_bytes,
                     "fc_weight_bytes_saved": 1 - r.fc_weight_bytes / off.fc_weight_bytes})
        print(f"{str(k) or 'off':50s} top1 {r.top1:.4f} ({rows[-1]['delta_top1_points']:+.2f} pt)  conv MACs saved "
              f"{r.conv_macs_saved:6.1%}  FC weight bytes {r.fc_weight_bytes:9,.0f} saved "
              f"{rows[-1]['fc_weight_bytes_saved']:6.1%}", flush=True)
    if a.json:
        ct.write_json(Path(a.json), rows)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--workdir", default="/tmp/tunable_lenet5", help="weights and logs (not the repo)")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--threads", type=int, default=1)

    t = sub.add_parser("train")
    common(t)
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--out", default=str(DEFAULT_OUT))
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--lr", type=float, default=2e-3, help="peak Adam learning rate (cosine decay)")
    t.add_argument("--fc-dropout", type=float, default=0.2, help="standard dropout before fc1 and fc2")
    t.add_argument("--fc3-dropout", type=float, default=0.1, help="dropout before the classifier fc3")
    t.add_argument("--act-l1", type=float, default=1.5e-2, help="L1 activity penalty on fc1/fc2 outputs")
    t.add_argument("--group-l1", type=float, default=1e-4, help="column group-lasso on the fc1/fc2 kernels")
    t.add_argument("--aip-aux", type=float, default=0.1, help="weight of the preview-vs-exact loss in fc1/fc2")
    t.add_argument("--aip-gate", type=float, default=0.75, help="fraction of batches with preview-negative rows zeroed")
    t.add_argument("--aip-fracs", type=float, nargs="+", default=[0.125, 0.0625],
                   help="preview fractions drawn per batch in training")
    t.add_argument("--max-rate", type=float, default=0.5, help="conv-output drop rates drawn in [0, max]")
    t.add_argument("--p-off", type=float, default=0.25, help="fraction of batches without conv dropout")
    t.add_argument("--p-shared", type=float, default=0.5)
    t.add_argument("--gran-probs", type=float, nargs=3, default=[0.7, 0.15, 0.15], metavar=("ELEM", "ROW", "CHAN"))
    t.add_argument("--ramp-epochs", type=int, default=2)
    t.add_argument("--shift", type=int, default=1, help="random +-2 pixel translations (1) or none (0)")
    t.add_argument("--calib", type=int, default=1000)
    t.set_defaults(fn=cmd_train)

    s = sub.add_parser("simulate")
    common(s)
    s.add_argument("--rates", type=float, nargs="+", default=[0.3, 0.5])
    s.set_defaults(fn=cmd_simulate)

    v = sub.add_parser("eval")
    v.add_argument("--model", default=str(DEFAULT_OUT))
    v.add_argument("--n", type=int, default=0, help="first n test images only (0: all 10k)")
    v.set_defaults(fn=cmd_eval)

    k = sub.add_parser("knobs")
    k.add_argument("--model", default=str(DEFAULT_OUT))
    k.add_argument("--n", type=int, default=0, help="first n test images only (0: all 10k)")
    k.add_argument("--calib", type=int, default=512,
                   help="the first N training images calibrate the plan (tunable eval's --calib-limit default)")
    k.add_argument("--aip", type=float, nargs="*", default=[1 / 4, 1 / 8, 1 / 16])
    k.add_argument("--aip-margin", type=int, nargs="*", default=[0])
    k.add_argument("--drowsy", type=float, nargs="*", default=[0.3, 0.5])
    k.add_argument("--json", default="", help="write the rows here")
    k.set_defaults(fn=cmd_knobs)

    a = p.parse_args(argv)
    a.fn(a)


if __name__ == "__main__":
    main()
