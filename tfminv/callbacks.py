"""A Keras callback that measures how much a model under training leaks through its predictions.

    cb = tfminv.LeakageCallback(aux_images, probe_images, probe_labels, every=2, budget=0.2)
    model.fit(x, y, epochs=20, callbacks=[cb])   # logs leak_mse, leak_mse_mean_aux, leak_attack_acc

Every `every` epochs the callback treats the model being trained as the target: it queries the
current model on the auxiliary images and on the probe ("victim") images, trains a small
inverter (`tfminv.models.build_inverter`, truncation k = `k`) on the auxiliary predictions from
scratch, and scores the probe reconstructions: MSE against the mean auxiliary image's MSE (the
guess any attacker gets for free) and, with probe labels, attack accuracy judged by the model
itself (biased upward; see `tfminv.run_inversion`). The numbers go into the epoch's `logs`
(so History, CSVLogger and EarlyStopping see them) and, with `log_dir`, to TensorBoard.

Every measurement trains the same inverter (fresh weights, `epochs` epochs), so the numbers
are comparable along the training run. Budget: the callback keeps its own wall time at most
`budget` times the training's wall time so far (time since training began, minus the
callback's own; e.g. 0.2: at most a fifth on top). A scheduled measurement whose estimated
cost (the previous measurement's) would break that is skipped (`leak_skipped` = 1 in the
logs). The first one always runs, to learn the cost; it also builds and traces the inverter
(seconds on a CPU; later measurements reuse the traced model), so the share can exceed the
budget by one measurement's cost, and converges to at most the budget over a long run.
bench/leakage_callback.py measures the share from outside. `history` keeps one dict per
scheduled measurement, and `overhead()` the share spent as the callback counts it.
"""

from __future__ import annotations

import time

import numpy as np


def _keras_callback_base():
    import keras

    return keras.callbacks.Callback


class LeakageCallback(_keras_callback_base()):
    """See the module docstring. aux_images / probe_images: arrays as `run_inversion` takes them
    (uint8 0-255 or float 0-1, the model's input shape); probe_labels: optional class indices.
    every: measure every N epochs (and after the last). epochs / width / batch_size: the
    inverter's budget per measurement; learning_rate: its Adam step (higher than the authors'
    2e-4, which needs ~100 epochs). budget: the callback's time as a share of training time.
    input_range: the model's input scale, as in `run_inversion`. outputs: 'auto',
    'probabilities' or 'logits', read by the door's rule (`tfminv.target.read_outputs`): auto
    takes softmax-ending models as probabilities, else rows with a negative entry or summing
    above 1 as logits and rows summing to 1 as probabilities; non-negative rows summing below 1
    raise OracleError at the measurement (declare `outputs=`), as `run_inversion` does."""

    def __init__(self, aux_images, probe_images, probe_labels=None, *, every: int = 1,
                 k: int | None = None, epochs: int = 5, width: float = 0.125,
                 batch_size: int = 32, learning_rate: float = 1e-3, budget: float = 0.25,
                 input_range=(0.0, 1.0),
                 outputs: str = "auto", log_dir=None, seed: int = 0, verbose: int = 0):
        super().__init__()
        from tfminv.attacks import core
        from tfminv.errors import ConfigError
        from tfminv.inputs import InversionInputs
        from tfminv.target import check_outputs, parse_input_range

        data = InversionInputs(aux_images, probe_images, probe_labels)
        self.aux, self.probe, self.labels = data.aux_images, data.victim_images, data.victim_labels
        if int(every) < 1 or int(epochs) < 1 or not 0 < float(budget):
            raise ConfigError(f"LeakageCallback: expected every >= 1, epochs >= 1 and budget > 0, "
                              f"got every={every}, epochs={epochs}, budget={budget}")
        self.every, self.k, self.max_epochs = int(every), k, int(epochs)
        self.width, self.batch_size, self.budget = float(width), int(batch_size), float(budget)
        self.learning_rate = float(learning_rate)
        self.lo, self.hi = parse_input_range(input_range)
        self.outputs = check_outputs(outputs)
        self.log_dir, self.seed, self.verbose = log_dir, seed, verbose
        # the inverter trains on every auxiliary image: they are its training rows
        self.mse_mean_aux = core.baselines(self.probe, self.aux).mean_aux
        self.outputs_read = None  # (kind, how) of the last measurement (target.read_outputs)
        self.history: list[dict] = []
        self.train_seconds = 0.0
        self.callback_seconds = 0.0
        self._cost = None  # seconds of the last measurement
        self._writer = None
        self._t_begin = None
        self._inv = None

    # ------------------------------------------------------------------ timing
    def on_train_begin(self, logs=None):
        self._t_begin = time.perf_counter()
        self._spent_at_begin = self.callback_seconds
        self._trained_before = self.train_seconds

    def _update_train_seconds(self):
        if self._t_begin is not None:
            wall = time.perf_counter() - self._t_begin
            self.train_seconds = (self._trained_before + wall
                                  - (self.callback_seconds - self._spent_at_begin))

    def overhead(self) -> float:
        """Callback seconds / training seconds so far (the budget's measured share)."""
        return self.callback_seconds / self.train_seconds if self.train_seconds else 0.0

    # ------------------------------------------------------------------ measurement
    def _scores(self, images) -> np.ndarray:
        """The model's raw answers on [0, 1] images (its input scale applied); finite."""
        from tfminv.target import check_answers

        x = self.lo + images * (self.hi - self.lo)
        out = np.concatenate([np.asarray(self.model.predict_on_batch(x[i:i + 256]), np.float32)
                              for i in range(0, len(x), 256)])
        check_answers(out, len(images), "LeakageCallback: the model being trained",
                      f"{len(images)} images")
        return out

    def _released(self, aux_raw, probe_raw):
        """Both answer sets as probabilities, by the door's rule (`tfminv.target.read_outputs`,
        decided on the auxiliary answers): logits are softmaxed once, probabilities pass, and
        rows that look like neither raise OracleError asking for `outputs=`."""
        from tfminv.export import ends_in_softmax
        from tfminv.oracles.base import softmax_np
        from tfminv.target import read_outputs

        self.outputs_read = read_outputs(aux_raw, self.outputs, ends_in_softmax(self.model),
                                         "LeakageCallback: the model being trained")
        if self.outputs_read[0] == "logits":
            return softmax_np(aux_raw), softmax_np(probe_raw)
        return aux_raw, probe_raw

    def _measure(self, epochs: int) -> dict:
        import keras

        from tfminv.attacks import core
        from tfminv.models import build_inverter

        aux_p, probe_p = self._released(self._scores(self.aux), self._scores(self.probe))
        m = aux_p.shape[1]
        if self._inv is None:  # built and traced once; later measurements restart from scratch
            k = min(self.k or m, m)
            self._inv = build_inverter(m, self.aux.shape[1:], self.width, k=k,
                                       name="leakage_inverter")
            self._inv.compile(optimizer=keras.optimizers.Adam(self.learning_rate, beta_1=0.5,
                                                              amsgrad=True), loss="mse")
            self._init = self._inv.get_weights()
        else:  # a fresh attacker: initial weights, zeroed optimizer state (no re-tracing)
            self._inv.set_weights(self._init)
            for v in self._inv.optimizer.variables:
                v.assign(np.zeros(v.shape, v.dtype))
        inv = self._inv
        inv.fit(aux_p, self.aux, batch_size=self.batch_size, epochs=epochs, shuffle=True,
                verbose=0)
        recon = np.asarray(inv.predict(probe_p, batch_size=256, verbose=0), np.float32)
        # the model judges its own inversions (biased upward, as in run_inversion); its argmax
        # only, so its raw answers serve
        scores = core.score(recon, self.probe, self.labels, core.ScoresJudge(self._scores))
        out = {"leak_mse": scores["mse"], "leak_mse_mean_aux": self.mse_mean_aux,
               "leak_inverter_epochs": float(epochs), "leak_skipped": 0.0}
        if self.labels is not None:
            out["leak_attack_acc"] = scores["attack_acc"]
        return out

    def on_epoch_end(self, epoch, logs=None):
        self._update_train_seconds()
        last = self.params.get("epochs") if self.params else None
        if (epoch + 1) % self.every and (last is None or epoch + 1 != last):
            return
        t0 = time.perf_counter()
        fits = (self._cost is None or
                self.callback_seconds + self._cost <= self.budget * self.train_seconds)
        if fits:
            out = self._measure(self.max_epochs)
            self._cost = time.perf_counter() - t0
        else:
            out = {"leak_skipped": 1.0}
        self.callback_seconds += time.perf_counter() - t0
        out["leak_overhead"] = self.overhead()
        if logs is not None:
            logs.update(out)
        self.history.append({"epoch": epoch + 1, **out})
        self._write(epoch, out)
        if self.verbose:
            print(f"\nleakage at epoch {epoch + 1}: " + ", ".join(
                f"{k} {v:.4f}" for k, v in out.items()))

    def _write(self, epoch, out):
        if not self.log_dir:
            return
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        with self._writer.as_default():
            for key, value in out.items():
                tf.summary.scalar(f"leakage/{key}", value, step=epoch + 1)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
