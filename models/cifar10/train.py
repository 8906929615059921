"""Knob-aware training of a ResNet-8 (MLPerf Tiny shape) on CIFAR-10, exported full-int8.

Usage (training needs the `train` extra: TensorFlow + Pillow; evaluation needs only the project env):
  nice -n 10 python models/cifar10/train.py train --workdir /tmp/tunable_cifar10 \
      --out models/resnet8_cifar10_drowsy_int8.tflite          # resumes from --workdir if interrupted
  python models/cifar10/train.py export   --workdir /tmp/tunable_cifar10 --out models/resnet8_cifar10_drowsy_int8.tflite
  python models/cifar10/train.py simulate --workdir /tmp/tunable_cifar10   # float drowsy sweep
  python models/cifar10/train.py eval     --model models/resnet8_cifar10_drowsy_int8.tflite   # TFLM + engine
  python models/cifar10/train.py knobs    --greedy 1000         # engine drowsy sweep (+ a profiled schedule)
  # self-distillation fine-tune from trained weights (BN frozen; schedule-shaped rates): see the README's commands
  nice -n 10 python models/cifar10/train.py train --init-weights W.weights.h5 --distill 1 --epochs 5 \
      --freeze-bn-epochs 5 --bn-recalib 0 --warm-epochs 0 --ramp-epochs 0 --lr 0.01 --profile r1 ... r9 --p-profile 0.6

Data: $TUNABLE_SHARED/data/cifar10/train_jpeg50k.tar.gz (train), test_first1000.npz (evaluation only; never
used to pick a checkpoint: the last epoch is exported).
Preprocessing: float input = raw RGB pixel values 0..255 (HWC); the int8 input is pixel - 128 (scale 1, zp -128).
See models/cifar10/README.md for the recipe and the measured numbers.
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

DEFAULT_OUT = ct.REPO / "models" / "resnet8_cifar10_drowsy_int8.tflite"


def build_resnet8(seed: int, l2: float, rescale: bool = False):
    """ResNet-8 as in MLPerf Tiny (conv 16@3x3, stages 16/32/64, 2nd/3rd stride 2 with 1x1 projection
    shortcuts, average pool, FC 10, softmax), with a KnobDropout after every conv output (the tensor the
    engine's drowsy knob drops: after BN and the fused ReLU where there is one, before the residual ADD).
    Global pooling is AveragePooling2D(8) + Flatten (AVERAGE_POOL_2D + RESHAPE in TFLite), not MEAN."""
    import keras
    from keras import layers
    KD = ct.knob_dropout_class()
    reg = keras.regularizers.l2(l2)
    n = [0]

    def drop(x):
        n[0] += 1
        return KD(seed=seed * 1000 + n[0], rescale=rescale, name=f"drowsy_{n[0]}")(x)

    def conv(x, f, k, s):
        return layers.Conv2D(f, k, strides=s, padding="same", kernel_initializer="he_normal",
                             kernel_regularizer=reg)(x)

    def bn(x):
        return layers.BatchNormalization()(x)

    inp = keras.Input((32, 32, 3), name="image")
    x = drop(layers.ReLU()(bn(conv(inp, 16, 3, 1))))
    # stage 1: identity shortcut
    y = drop(layers.ReLU()(bn(conv(x, 16, 3, 1))))
    y = drop(bn(conv(y, 16, 3, 1)))
    x = layers.ReLU()(layers.Add()([x, y]))
    for f in (32, 64):  # stages 2 and 3: stride 2, 1x1 projection shortcut
        y = drop(layers.ReLU()(bn(conv(x, f, 3, 2))))
        y = drop(bn(conv(y, f, 3, 1)))
        sc = drop(conv(x, f, 1, 2))
        x = layers.ReLU()(layers.Add()([sc, y]))
    x = layers.AveragePooling2D(pool_size=8)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(10, kernel_initializer="he_normal", kernel_regularizer=reg)(x)
    out = layers.Softmax()(x)
    return keras.Model(inp, out, name="resnet8_drowsy")


def augment(x: np.ndarray, rng: np.random.Generator, pad: int = 4) -> np.ndarray:
    """Random crop of a zero-padded image (pad 4) and random horizontal flip, on uint8 batches."""
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dy = rng.integers(0, 2 * pad + 1, n)
    dx = rng.integers(0, 2 * pad + 1, n)
    rows = dy[:, None] + np.arange(h)[None, :]
    cols = dx[:, None] + np.arange(w)[None, :]
    out = xp[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    return out


def lr_at(step: int, total: int, warm: int, peak: float) -> float:
    if step < warm:
        return peak * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return 0.5 * peak * (1 + math.cos(math.pi * min(1.0, t)))


def cmd_train(a) -> None:
    tf, keras = ct.setup_tf(a.seed, a.threads)
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr = ct.load_cifar10_train_jpeg()
    if a.limit:  # smoke tests only
        x_tr, y_tr = x_tr[::len(x_tr) // a.limit][:a.limit], y_tr[::len(y_tr) // a.limit][:a.limit]
    x_te, y_te = ct.load_cifar10_test()
    x_te_f = x_te.astype(np.float32)
    ct.log(f"train {x_tr.shape}, test {x_te.shape}")
    # monitoring split for the drowsy profile: 1000 fixed training images (never the test set)
    mon = np.random.default_rng(a.seed + 11).permutation(len(x_tr))[:1000]
    x_mon, y_mon = x_tr[mon].astype(np.float32), y_tr[mon]

    model = build_resnet8(a.seed, a.l2, bool(a.rescale))
    if a.init_weights:  # fine-tuning stage: start from a trained model's weights
        model.load_weights(a.init_weights)
        ct.log(f"initialised from {a.init_weights}")
    steps_per_epoch = len(x_tr) // a.batch
    total = steps_per_epoch * a.epochs
    freeze_from = a.epochs - a.freeze_bn_epochs
    # a global gradient-norm clip as a safety net: it is rarely active, but a step through BN switching to
    # inference mode (the last epochs) must not blow the weights up
    opt = keras.optimizers.SGD(learning_rate=a.lr, momentum=0.9, nesterov=True, global_clipnorm=5.0)
    opt.build(model.trainable_variables)  # slots for every variable, so checkpoints keep one structure
    ctrl = ct.KnobDropoutController(model, max_rate=a.max_rate, p_off=a.p_off, p_shared=a.p_shared,
                                      gran_probs=tuple(a.gran_probs), ramp_steps=a.ramp_epochs * steps_per_epoch,
                                      seed=a.seed, profile=a.profile or None, p_profile=a.p_profile,
                                      profile_level=tuple(a.profile_level), profile_jitter=a.profile_jitter)
    distill_step = _make_distill_step(model, opt, a) if a.distill else None

    state_path = work / "state.json"
    ckpt = tf.train.Checkpoint(model=model, optimizer=opt)
    start = 0
    if state_path.exists() and not a.fresh:
        st = json.loads(state_path.read_text())
        if st.get("args_key") != _args_key(a):
            raise SystemExit(f"{work}: checkpoint was made with other arguments ({st.get('args_key')}); "
                             f"use --fresh or another --workdir")
        # restore after the optimizer has slots: build them with a zero-lr step on one batch
        _compile(model, opt, bn_frozen=st["epoch"] >= freeze_from)
        ckpt.restore(st["ckpt"]).expect_partial()
        start = st["epoch"]
        ctrl.step = start * steps_per_epoch
        ct.log(f"resumed at epoch {start} from {st['ckpt']}")
    history = json.loads((work / "history.json").read_text()) if (work / "history.json").exists() and start else []

    compiled_frozen = None
    for epoch in range(start, a.epochs):
        frozen = epoch >= freeze_from
        if compiled_frozen != frozen:
            if frozen and epoch == freeze_from and a.bn_recalib:
                recalibrate_bn(model, x_tr[np.random.default_rng(a.seed + 3).permutation(len(x_tr))[:a.bn_calib]])
            _compile(model, opt, bn_frozen=frozen)
            compiled_frozen = frozen
        rng = np.random.default_rng([a.seed, epoch])
        perm = rng.permutation(len(x_tr))
        t0 = time.time()
        losses, accs, extra = [], [], []
        ctrl.set_epoch_rng(epoch)
        for b in range(steps_per_epoch):
            idx = perm[b * a.batch:(b + 1) * a.batch]
            xb = augment(x_tr[idx], rng).astype(np.float32)
            yb = y_tr[idx].astype(np.int32)
            opt.learning_rate = lr_at(epoch * steps_per_epoch + b, total, a.warm_epochs * steps_per_epoch, a.lr)
            ctrl.before_batch()
            if distill_step is not None:
                logs = {k: float(v) for k, v in distill_step(xb, yb).items()}
            else:
                logs = model.train_on_batch(xb, yb, return_dict=True)
            if not np.isfinite(logs["loss"]):
                raise SystemExit(f"epoch {epoch} step {b}: loss is {logs['loss']}; the checkpoint of epoch "
                                 f"{epoch} in {work} is intact (fix, then rerun to resume)")
            losses.append(logs["loss"])
            accs.append(logs.get("accuracy", logs.get("compile_metrics", 0.0)))
            if distill_step is not None:
                extra.append([logs["ce_clean"], logs["ce_drop"], logs["kl"], logs["acc_clean"]])
            if b % 100 == 0:
                more = "" if not extra else (" ce_clean/ce_drop/kl/acc_clean " +
                                             " ".join(f"{v:.3f}" for v in np.mean(extra[-100:], 0)))
                ct.log(f"epoch {epoch} step {b}/{steps_per_epoch} loss {np.mean(losses[-100:]):.3f} "
                       f"acc {np.mean(accs[-100:]):.3f} lr {float(opt.learning_rate):.4f}{more}")
        ct.set_knob_dropout(model, 0.0)
        test = float(np.mean(np.argmax(model.predict(x_te_f, batch_size=250, verbose=0), 1) == y_te))
        rec = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "train_acc": float(np.mean(accs)),
               "test1000_float_clean": test, "seconds": round(time.time() - t0, 1), "bn_frozen": frozen}
        if extra:
            rec.update(zip(["ce_clean", "ce_drop", "kl", "train_acc_clean"], map(float, np.mean(extra, 0))))
        if a.profile:  # float top-1 at the profile schedule (L = 1, element), on training images only
            # simulate_drowsy reseeds the mask generators: keep the training draws' state
            gens = [l.seed_gen.state for l in model._flatten_layers() if type(l).__name__ == "KnobDropout"]
            saved = [g.numpy() for g in gens]
            rec["train_float_profile_element"] = ct.simulate_drowsy(model, x_mon, y_mon, a.profile, "element")
            for g, v in zip(gens, saved):
                g.assign(v)
        history.append(rec)
        ct.log(json.dumps(rec))
        path = ckpt.write(str(work / "ckpt"))
        ct.write_json(work / "history.json", history)
        ct.write_json(state_path, {"epoch": epoch + 1, "ckpt": path, "args_key": _args_key(a)})
    model.save_weights(str(work / "final.weights.h5"))
    _export_and_report(model, x_tr, x_te_f, y_te, Path(a.out), work, a)


def _make_distill_step(model, opt, a):
    """Self-distillation train step (slimmable / once-for-all networks' in-place distillation): the batch is run
    twice in one pass, clean (knob off, the teacher) and with the drawn knob dropout (the student), via
    KnobDropout.split_clean; loss = CE(clean) + w_ce * CE(dropped) + w_kd * T^2 KL(stop_grad(clean_T) ||
    dropped_T), plus the L2 the compiled model would add. The two halves share BN only correctly with BN in
    inference mode, so this step requires BN frozen for the whole run (--freeze-bn-epochs = --epochs)."""
    import keras
    import tensorflow as tf
    if a.freeze_bn_epochs < a.epochs:
        raise SystemExit("--distill needs BN frozen for the whole run (--freeze-bn-epochs >= --epochs): with "
                         "batch statistics the clean and dropped halves would normalise each other")
    ct.knob_dropout_class().split_clean = True
    logits_model = keras.Model(model.inputs, model.layers[-2].output)  # the Dense before the Softmax
    kernels = [l.kernel for l in model.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]
    T, w_ce, w_kd, l2 = float(a.kd_temp), float(a.kd_ce_weight), float(a.kd_weight), float(a.l2)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(xb, yb):
        n = tf.shape(xb)[0]
        with tf.GradientTape() as tape:
            z = logits_model(tf.concat([xb, xb], 0), training=True)
            zc, zd = z[:n], z[n:]
            ce_c, ce_d = ce(yb, zc), ce(yb, zd)
            pt = tf.nn.softmax(tf.stop_gradient(zc) / T)
            kl = tf.reduce_mean(tf.reduce_sum(pt * (tf.math.log(pt + 1e-12) - tf.nn.log_softmax(zd / T)), 1)) * T * T
            reg = l2 * tf.add_n([tf.reduce_sum(tf.square(k)) for k in kernels])
            loss = ce_c + w_ce * ce_d + w_kd * kl + reg
        vars_ = model.trainable_variables
        opt.apply_gradients(zip(tape.gradient(loss, vars_), vars_))
        acc = lambda zz: tf.reduce_mean(tf.cast(tf.equal(tf.argmax(zz, 1, output_type=tf.int32), yb), tf.float32))
        return {"loss": loss, "accuracy": acc(zd), "acc_clean": acc(zc), "ce_clean": ce_c, "ce_drop": ce_d,
                "kl": kl}

    return step


def recalibrate_bn(model, x_u8: np.ndarray) -> None:
    """Replaces every BN layer's moving mean/variance by the exact statistics of its input on clean images
    (all knob dropout off), layer after layer in graph order so each sees the already-recalibrated ones before
    it. During the batch-statistics phase the next BN normalizes away the scale change of un-rescaled dropout,
    so the moving averages mix many drop rates; after this, the knob-off network is exactly normalized and the
    frozen-BN phase teaches it to live with drops under the fixed affine BN that the int8 export folds."""
    import keras
    ct.set_knob_dropout(model, 0.0)
    x = x_u8.astype(np.float32)
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    for bn in bns:
        sub = keras.Model(model.inputs, bn.input)
        h = np.asarray(sub.predict(x, batch_size=250, verbose=0), np.float64)
        axes = tuple(range(h.ndim - 1))
        bn.moving_mean.assign(h.mean(axes).astype(np.float32))
        bn.moving_variance.assign(h.var(axes).astype(np.float32))
    ct.log(f"recalibrated {len(bns)} BN layers on {len(x)} clean training images")


def _args_key(a) -> str:
    keys = ["seed", "epochs", "batch", "lr", "l2", "max_rate", "p_off", "p_shared", "gran_probs", "ramp_epochs",
            "warm_epochs", "freeze_bn_epochs", "bn_calib", "limit", "rescale", "init_weights"]
    # options added with the distillation stage enter the key only when used, so the key (and resuming) of a
    # default run is what it was before they existed
    more = {"distill": 0, "kd_weight": 1.0, "kd_ce_weight": 1.0, "kd_temp": 1.0, "profile": [], "p_profile": 0.0,
            "profile_level": [0.5, 1.2], "profile_jitter": 0.1, "bn_recalib": 1}
    d = {k: getattr(a, k) for k in keys}
    d.update({k: getattr(a, k) for k, v in more.items() if getattr(a, k) != v})
    return json.dumps(d, sort_keys=True)


def _compile(model, opt, bn_frozen: bool) -> None:
    """BN layers in inference mode for the last epochs (trainable=False in Keras 3), so that the network is
    fine-tuned under dropout with exactly the affine BN that the int8 export folds into the convs."""
    import keras
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = not bn_frozen
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def _export_and_report(model, x_tr, x_te_f, y_te, out: Path, work: Path, a) -> None:
    rng = np.random.default_rng(a.seed + 7)
    calib = x_tr[rng.permutation(len(x_tr))[:a.calib]].astype(np.float32)
    info = ct.export_int8(model, calib, out, n_calib=a.calib)
    ct.log(f"exported {out}: {json.dumps({k: v for k, v in info.items() if k != 'ops'})}")
    ct.log(f"ops: {sorted(set(info['ops']))}")
    acc = ct.tflite_interp_top1(out, x_te_f, y_te)
    ct.log(f"int8 top-1 (TF Lite interpreter) on test_first1000: {acc:.4f}")
    info["tflite_interpreter_top1_test1000"] = acc
    ct.write_json(work / "export.json", info)


def _load_trained(a):
    tf, keras = ct.setup_tf(a.seed, a.threads)
    model = build_resnet8(a.seed, a.l2, bool(a.rescale))
    work = Path(a.workdir)
    if (work / "final.weights.h5").exists():
        model.load_weights(str(work / "final.weights.h5"))
    else:
        st = json.loads((work / "state.json").read_text())
        tf.train.Checkpoint(model=model).restore(st["ckpt"]).expect_partial()
        ct.log(f"loaded checkpoint of epoch {st['epoch']} (training not finished)")
    return model


def cmd_export(a) -> None:
    model = _load_trained(a)
    x_tr, _ = ct.load_cifar10_train_jpeg()
    x_te, y_te = ct.load_cifar10_test()
    _export_and_report(model, x_tr, x_te.astype(np.float32), y_te, Path(a.out), Path(a.workdir), a)


def cmd_simulate(a) -> None:
    """Float top-1 on test_first1000 with drowsy (no rescale) at uniform rates and every granularity."""
    model = _load_trained(a)
    x_te, y_te = ct.load_cifar10_test()
    x = x_te.astype(np.float32)
    res = {}
    for g in ct.GRANULARITIES:
        for p in a.rates:
            accs = [ct.simulate_drowsy(model, x, y_te, p, g, seed=s) for s in range(a.seeds)]
            res[f"{g}@{p}"] = float(np.mean(accs))
            ct.log(f"drowsy {g:8s} p={p:.2f}: float top-1 {np.mean(accs):.4f} (seeds {a.seeds})")
    ct.write_json(Path(a.workdir) / "simulate.json", res)


def cmd_eval(a) -> None:
    x_te, y_te = ct.load_cifar10_test()
    res = ct.evaluate_int8(Path(a.model), x_te.astype(np.float32), y_te)
    res.update(dataset="cifar10 test_first1000.npz", sha256=ct.sha256_file(Path(a.model)),
               ops=sorted(set(ct.tflite_ops(Path(a.model)))))
    print(json.dumps(res, indent=2))


def cmd_knobs(a) -> None:
    """Accuracy and conv-MAC savings of the engine's drowsy knob on the int8 model (project env)."""
    x_te, y_te = ct.load_cifar10_test()
    if a.n:
        x_te, y_te = x_te[:a.n], y_te[:a.n]
    with np.load(ct.shared_dir() / "data" / "cifar10" / "train_first4000.npz") as z:
        calib = (z["x"][:a.calib].astype(np.int16) - 128).astype(np.int8)  # int8 input = pixel - 128
    settings = []
    for g in a.granularity:
        for sel in a.select:
            if sel == "importance" and g == "element":
                continue
            for p in a.drowsy:
                for rescale in a.rescale:
                    settings.append({"drowsy": p, "drowsy_granularity": g, "drowsy_select": sel,
                                     "drowsy_rescale": bool(rescale)})
    for sched in a.schedule:  # fixed non-uniform schedules, "r1,...,r9" for conv_1..conv_9
        rates = [float(v) for v in sched.split(",")]
        for g in a.granularity:
            for rescale in a.rescale:
                settings.append({"drowsy": {f"conv_{i + 1}": r for i, r in enumerate(rates) if r > 0},
                                 "drowsy_granularity": g, "drowsy_select": "random", "drowsy_rescale": bool(rescale)})
    if a.greedy:
        # a non-uniform schedule profiled on training images (train_first4000 after the calibration ones)
        with np.load(ct.shared_dir() / "data" / "cifar10" / "train_first4000.npz") as z:
            px = (z["x"][a.calib:a.calib + a.greedy].astype(np.int16) - 128).astype(np.int8)
            py = z["y"][a.calib:a.calib + a.greedy].astype(np.int64)
        for g in a.granularity:
            for sel in a.select:
                if sel == "importance" and g == "element":
                    continue
                for rescale in a.rescale:
                    sched = ct.greedy_drowsy_schedule(Path(a.model), px, py, calib, target=a.target, granularity=g,
                                                      select=sel, rescale=bool(rescale))
                    settings.append({"drowsy": sched, "drowsy_granularity": g, "drowsy_select": sel,
                                     "drowsy_rescale": bool(rescale)})
    if a.with_sign_exact:  # the exact sign_exact knob alone and on top of every drowsy setting (a separate line)
        settings += [{"sign_exact": True}] + [dict(kw, sign_exact=True) for kw in settings]
    rows = ct.engine_knob_sweep(Path(a.model), (x_te.astype(np.int16) - 128).astype(np.int8), y_te.astype(np.int64),
                                settings, calib)
    ct.print_sweep(rows)
    if a.json:
        ct.write_json(Path(a.json), rows)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--workdir", default="/tmp/tunable_cifar10", help="checkpoints and logs (not the repo)")
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--threads", type=int, default=1)
        sp.add_argument("--l2", type=float, default=2.5e-4, help="L2 on conv/FC kernels (= weight decay 5e-4)")
        sp.add_argument("--rescale", type=int, default=1,
                        help="1: inverted dropout (kept outputs * 1/(1-p)), for drowsy_rescale=True at inference")

    t = sub.add_parser("train")
    common(t)
    t.add_argument("--epochs", type=int, default=24)
    t.add_argument("--out", default=str(DEFAULT_OUT))
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--lr", type=float, default=0.1, help="peak SGD learning rate (nesterov, momentum 0.9)")
    t.add_argument("--warm-epochs", type=int, default=1)
    t.add_argument("--max-rate", type=float, default=0.6, help="conv-output drop rates drawn in [0, max]")
    t.add_argument("--p-off", type=float, default=0.2, help="fraction of batches without conv dropout")
    t.add_argument("--p-shared", type=float, default=0.5, help="fraction of batches with one rate for all convs")
    t.add_argument("--gran-probs", type=float, nargs=3, default=[0.7, 0.2, 0.1], metavar=("ELEM", "ROW", "CHAN"))
    t.add_argument("--ramp-epochs", type=int, default=3, help="max drop rate ramps up over these epochs")
    t.add_argument("--freeze-bn-epochs", type=int, default=8,
                   help="last epochs with BN in inference mode (after recalibrating its statistics)")
    t.add_argument("--bn-calib", type=int, default=5000, help="clean images for the BN recalibration")
    t.add_argument("--calib", type=int, default=500, help="representative images for int8 calibration")
    t.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --workdir")
    t.add_argument("--limit", type=int, default=0, help="train on this many images only (smoke tests)")
    t.add_argument("--init-weights", default="", help="fine-tune from these weights (.weights.h5)")
    t.add_argument("--bn-recalib", type=int, default=1,
                   help="0: keep the BN statistics when BN freezes (fine-tuning a model whose BN is already frozen)")
    t.add_argument("--distill", type=int, default=0,
                   help="1: self-distillation step (clean teacher + dropped student in one batch; needs BN frozen)")
    t.add_argument("--kd-weight", type=float, default=1.0, help="weight of KL(clean || dropped)")
    t.add_argument("--kd-ce-weight", type=float, default=1.0, help="weight of CE(dropped)")
    t.add_argument("--kd-temp", type=float, default=1.0, help="distillation temperature")
    t.add_argument("--profile", type=float, nargs="*", default=[],
                   help="per-conv drop rates (conv_1..conv_9) whose shape the schedule-shaped draws follow")
    t.add_argument("--p-profile", type=float, default=0.0,
                   help="fraction of the dropout batches drawn schedule-shaped (around --profile)")
    t.add_argument("--profile-level", type=float, nargs=2, default=[0.5, 1.2], metavar=("LO", "HI"),
                   help="the level multiplying --profile is drawn in [LO, HI]")
    t.add_argument("--profile-jitter", type=float, default=0.1, help="per-conv uniform jitter on the profile")
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("export")
    common(e)
    e.add_argument("--out", default=str(DEFAULT_OUT))
    e.add_argument("--calib", type=int, default=500)
    e.set_defaults(fn=cmd_export)

    s = sub.add_parser("simulate")
    common(s)
    s.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.3, 0.5, 0.6])
    s.add_argument("--seeds", type=int, default=2)
    s.set_defaults(fn=cmd_simulate)

    v = sub.add_parser("eval")
    v.add_argument("--model", default=str(DEFAULT_OUT))
    v.set_defaults(fn=cmd_eval)

    k = sub.add_parser("knobs")
    k.add_argument("--model", default=str(DEFAULT_OUT))
    k.add_argument("--n", type=int, default=0, help="first n test images only (0: all 1000)")
    k.add_argument("--calib", type=int, default=500, help="images of train_first4000.npz for calibration")
    k.add_argument("--drowsy", type=float, nargs="*", default=[0.3, 0.5, 0.6])
    k.add_argument("--granularity", nargs="*", default=["element", "row", "channel"])
    k.add_argument("--select", nargs="*", default=["random", "importance"])
    k.add_argument("--rescale", type=int, nargs="*", default=[1], help="drowsy_rescale values to sweep (1: as trained)")
    k.add_argument("--greedy", type=int, default=0,
                   help="also profile a greedy non-uniform schedule on this many training images")
    k.add_argument("--target", type=float, default=0.5, help="conv MAC saving the greedy schedule aims at")
    k.add_argument("--schedule", nargs="*", default=[],
                   help="fixed per-conv schedules to measure, each 'r1,...,r9' (conv_1..conv_9), random selection")
    k.add_argument("--with-sign-exact", action="store_true",
                   help="also measure sign_exact alone and combined with every drowsy setting")
    k.add_argument("--json", default="", help="write the rows here")
    k.set_defaults(fn=cmd_knobs)

    a = p.parse_args(argv)
    a.fn(a)


if __name__ == "__main__":
    main()
