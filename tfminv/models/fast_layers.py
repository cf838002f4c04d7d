"""Drop-in Keras layers that train the paper's models faster on TensorFlow; same maths, same weights.

Profiling a training step (bench/profile_step.py) showed two costs that are not the
convolutions' arithmetic:
- Keras 3 batch normalisation is unfused: about ten elementwise and reduction ops, in float32
  even under mixed_bfloat16. `BatchNorm` runs TensorFlow's fused kernel instead (one op
  forward, one backward, bfloat16 in and out with float32 statistics).
- TensorFlow's filter-gradient kernel is slow when the spatial extent is small and the channels
  many (face classifier conv3: 8x8, 512->1024; face inverter deconv1: 4x4 -> 8x8, 1024->512).
  There `Conv2D` / `Conv2DTranspose` compute the kernel gradient as one matmul per kernel tap
  over a unit-stride view of the padded input, which runs near the matmul peak. Elsewhere they
  leave TensorFlow's own kernels in place.
Each layer subclasses the Keras layer of the same name, keeps its config and weight layout,
and is registered, so saved models load and export as before.
"""

from __future__ import annotations

import keras
import tensorflow as tf

# The matmul filter gradient is used when the forward convolution has at most this many output
# positions per image (its K dimension per tap), only on CPU (GPU kernels were not measured),
# and for Conv2D only in 16-bit compute. Measured by bench/profile_step.py --layers on the
# paper's shapes (see BENCHMARKS.md): at <= 64 positions Conv2D gains 1.16-1.5x in bfloat16
# (none in float32) and Conv2DTranspose 1.3-3.8x in bfloat16 and 1.26-1.81x in float32; at 256
# and more positions it mostly loses.
MATMUL_FILTER_GRAD_MAX_POSITIONS = 64


def safe_reduction_dtype(k: int) -> str | None:
    """'float32' for a layer that reduces over `k` inputs when k > 32 and k % 32 != 0, else None
    (the global policy).

    Why: under mixed_bfloat16 on the project's AVX512_BF16 CPU (AMD EPYC, TensorFlow 2.21's
    oneDNN), the inverter's first transposed convolution (1x1 -> 4x4 over the m = 471 entries
    of the prediction vector) intermittently returned NaN from finite inputs and weights:
    `tf.debugging.enable_check_numerics` named its Conv2DBackpropInput op, 4 trainings in 5
    epochs went NaN at k = 1, and reruns of the same batch were finite. oneDNN fixed a bf16
    brgemm fault of this kind (NaN leaking through the zero-padded K tail when K % 32 != 0,
    uxlfoundation/oneDNN#5717) for AMX; this is the same shape of input on a non-AMX CPU. The
    layer is a few percent of the inverter's work, so float32 there costs little.
    """
    return "float32" if int(k) > 32 and int(k) % 32 else None


def _use_matmul_grad(layer, positions, dtype, sixteen_bit_only: bool) -> bool:
    if positions is None or positions > MATMUL_FILTER_GRAD_MAX_POSITIONS:
        return False
    if sixteen_bit_only and dtype not in (tf.bfloat16, tf.float16):
        return False
    return _plain_2d(layer) and not tf.config.list_logical_devices("GPU")


def _same_pads(in_size: int, out_size: int, k: int, s: int) -> tuple[int, int]:
    total = max((out_size - 1) * s + k - in_size, 0)
    return total // 2, total - total // 2


def conv_filter_grad(z, g, kernel_size, strides, padding):
    """Kernel gradient [KH, KW, Cz, Cg] of `out = conv2d(z, W)` given out's gradient `g`.

    One matmul per tap: dW[kh, kw] = sum over images and positions of zpad[s*i+kh, s*j+kw] g[i, j].
    The strided taps are read as unit-stride slices of a [N, H/s, s, W/s, s, C] view, because
    TensorFlow's strided slice with step > 1 runs about 30x slower.
    """
    kh_, kw_ = kernel_size
    sh, sw = strides
    hz, wz, cz = z.shape[1], z.shape[2], z.shape[3]
    ho, wo, cg = g.shape[1], g.shape[2], g.shape[3]
    pt = pl = 0
    if padding == "same":
        pt = _same_pads(hz, ho, kh_, sh)[0]
        pl = _same_pads(wz, wo, kw_, sw)[0]
    hp, wp = sh * ((kh_ - 1) // sh + ho), sw * ((kw_ - 1) // sw + wo)  # rows/cols the taps span
    z = tf.pad(z, [[0, 0], [pt, max(hp - pt - hz, 0)], [pl, max(wp - pl - wz, 0)], [0, 0]])
    z = tf.reshape(z[:, :hp, :wp, :], [-1, hp // sh, sh, wp // sw, sw, cz])
    gf = tf.reshape(g, [-1, cg])
    taps = []
    for i in range(kh_):
        for j in range(kw_):
            tap = z[:, i // sh:i // sh + ho, i % sh, j // sw:j // sw + wo, j % sw, :]
            taps.append(tf.matmul(tf.reshape(tap, [-1, cz]), gf, transpose_a=True))
    return tf.reshape(tf.stack(taps), [kh_, kw_, cz, cg])


def _plain_2d(layer) -> bool:
    return (layer.rank == 2 and layer.data_format == "channels_last"
            and tuple(layer.dilation_rate) == (1, 1) and getattr(layer, "groups", 1) == 1
            and keras.backend.backend() == "tensorflow")


@keras.saving.register_keras_serializable(package="tfminv")
class Conv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D whose kernel gradient is a per-tap matmul on small feature maps."""

    def convolution_op(self, inputs, kernel):
        positions = None
        if inputs.shape[1] is not None and inputs.shape[2] is not None:
            out = self.compute_output_shape(inputs.shape)
            positions = out[1] * out[2]
        if not _use_matmul_grad(self, positions, inputs.dtype, sixteen_bit_only=True):
            return super().convolution_op(inputs, kernel)
        strides, padding, ksize = tuple(self.strides), self.padding, tuple(self.kernel_size)

        @tf.custom_gradient
        def conv(x, w):
            y = tf.nn.conv2d(x, w, strides, padding.upper())

            def grad(dy):
                dx = tf.nn.conv2d_transpose(dy, w, tf.shape(x), strides, padding.upper())
                return dx, conv_filter_grad(x, dy, ksize, strides, padding)
            return y, grad

        return conv(inputs, tf.cast(kernel, inputs.dtype))


@keras.saving.register_keras_serializable(package="tfminv")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """keras.layers.Conv2DTranspose whose kernel gradient is a per-tap matmul on small inputs."""

    def call(self, inputs):
        h, w = inputs.shape[1], inputs.shape[2]
        positions = h * w if h is not None and w is not None else None
        if (self.output_padding is not None
                or not _use_matmul_grad(self, positions, inputs.dtype, sixteen_bit_only=False)):
            return super().call(inputs)
        strides, padding, ksize = tuple(self.strides), self.padding, tuple(self.kernel_size)
        out_shape = self.compute_output_shape(inputs.shape)

        @tf.custom_gradient
        def conv_t(x, k):
            shape = tf.stack([tf.shape(x)[0], out_shape[1], out_shape[2], out_shape[3]])
            y = tf.nn.conv2d_transpose(x, k, shape, strides, padding.upper())

            def grad(dy):
                dx = tf.nn.conv2d(dy, k, strides, padding.upper())
                # conv_transpose is the input-gradient of conv2d(y-space -> x-space), so its
                # kernel gradient is that conv's filter gradient with dy as input, x as output.
                return dx, conv_filter_grad(dy, x, ksize, strides, padding)
            y.set_shape([None, *out_shape[1:]])
            return y, grad

        outputs = conv_t(inputs, tf.cast(self.kernel, inputs.dtype))
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, outputs.dtype))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


@keras.saving.register_keras_serializable(package="tfminv")
class BatchNorm(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization computed by TensorFlow's fused kernel on 4-D NHWC input.

    Same statistics as Keras: normalise by the biased batch variance, and move the moving
    variance towards the biased one (the fused kernel reports the unbiased one; undone here).
    """

    def _fused_ok(self, inputs, mask) -> bool:
        return (mask is None and not self.renorm and not self.synchronized
                and keras.backend.backend() == "tensorflow" and len(inputs.shape) == 4
                and self.axis in (-1, 3) and self.scale and self.center)

    def call(self, inputs, training=None, mask=None):
        if not self._fused_ok(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        x = inputs if inputs.dtype in (tf.float32, tf.bfloat16, tf.float16) \
            else tf.cast(inputs, tf.float32)
        gamma = tf.cast(self.gamma, tf.float32)
        beta = tf.cast(self.beta, tf.float32)
        if training and self.trainable:
            y, mean, var_unbiased = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, is_training=True)
            n = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
            variance = var_unbiased * tf.maximum(n - 1.0, 0.0) / n
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon,
                is_training=False)
        return tf.cast(y, self.compute_dtype)
