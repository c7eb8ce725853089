"""LayerNorm over the last axis with a hand-written gradient.

Keras' LayerNormalization is differentiated op by op, which keeps several
[tokens, hidden] intermediates alive for the backward pass. The closed-form
gradient needs only the normalized input and the inverse standard deviation,
so each of the encoder's 2 * layers norms holds less memory and runs fewer
kernels. The weights (gamma, beta) and config are Keras' own.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="electra_tf")
class LayerNorm(keras.layers.LayerNormalization):
    """keras.layers.LayerNormalization(axis=-1), computed in float32, with a closed-form gradient."""

    def build(self, input_shape):
        if self.axis not in (-1, [-1], len(input_shape) - 1, [len(input_shape) - 1]):
            raise ValueError(f"LayerNorm normalizes the last axis only, got axis={self.axis}")
        if not (self.center and self.scale) or self.rms_scaling:
            raise ValueError("LayerNorm needs center=True, scale=True, rms_scaling=False")
        super().build(input_shape)

    def call(self, inputs):
        return tf.cast(
            float32_layer_norm(inputs, self.gamma, self.beta, self.epsilon), self.compute_dtype
        )


def float32_layer_norm(x, gamma, beta, epsilon):
    """`layer_norm` computed in float32 whatever x's dtype, returned in x's dtype."""
    outputs = layer_norm(
        tf.cast(x, tf.float32), tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32), epsilon
    )
    return tf.cast(outputs, x.dtype)


def layer_norm(x, gamma, beta, epsilon):
    """(x - mean) / sqrt(var + epsilon) * gamma + beta over the last axis."""

    @tf.custom_gradient
    def forward(x, gamma, beta):
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        inv_std = tf.math.rsqrt(variance + epsilon)
        normalized = (x - mean) * inv_std

        def backward(upstream):
            reduce_axes = list(range(upstream.shape.rank - 1))
            grad_normalized = upstream * gamma
            grad_x = inv_std * (
                grad_normalized
                - tf.reduce_mean(grad_normalized, axis=-1, keepdims=True)
                - normalized * tf.reduce_mean(grad_normalized * normalized, axis=-1, keepdims=True)
            )
            return (
                grad_x,
                tf.reduce_sum(upstream * normalized, axis=reduce_axes),
                tf.reduce_sum(upstream, axis=reduce_axes),
            )

        return normalized * gamma + beta, backward

    return forward(x, gamma, beta)
