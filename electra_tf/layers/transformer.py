"""Post-LayerNorm transformer layer (BERT/ELECTRA) with explicit attention biases."""

import keras
import tensorflow as tf

from electra_tf.layers.dropout import fold_seed, stateless_dropout


def attention_bias_from_mask(input_mask, dtype):
    """[B, L] 0/1 padding mask -> [B, 1, 1, L] additive bias (0 keep, -10000 drop).

    -10000 (the original's constant) rather than -inf keeps fully padded rows
    finite and fits in float16.
    """
    keep = tf.cast(input_mask, tf.float32)[:, tf.newaxis, tf.newaxis, :]
    return tf.cast((1.0 - keep) * -10000.0, dtype)


def exact_gelu(x):
    return keras.activations.gelu(x, approximate=False)


def _dense(units, initializer_range, name, dtype, activation=None):
    return keras.layers.Dense(
        units, activation=activation, name=name, dtype=dtype,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range))


@keras.saving.register_keras_serializable(package="electra_tf")
class TransformerLayer(keras.layers.Layer):
    """Self-attention + feed-forward block, each followed by residual + LayerNorm."""

    def __init__(self, hidden_size, num_attention_heads, intermediate_size,
                 hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                 initializer_range=0.02, layer_norm_eps=1e-12, **kwargs):
        super().__init__(**kwargs)
        if hidden_size % num_attention_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by "
                             f"num_attention_heads {num_attention_heads}")
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.head_size = hidden_size // num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        policy = self.dtype_policy

        def dense(units, name, activation=None):
            return _dense(units, initializer_range, name, policy, activation)

        self.query = dense(hidden_size, "query")
        self.key = dense(hidden_size, "key")
        self.value = dense(hidden_size, "value")
        self.attention_output = dense(hidden_size, "attention_output")
        self.attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=policy, name="attention_layer_norm")
        self.intermediate = dense(intermediate_size, "intermediate", activation=exact_gelu)
        self.output_dense = dense(hidden_size, "output")
        self.output_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=policy, name="output_layer_norm")

    def build(self, input_shape):
        hidden_shape = (None, None, self.hidden_size)
        for layer in (self.query, self.key, self.value, self.attention_output, self.intermediate):
            layer.build(hidden_shape)
        self.output_dense.build((None, None, self.intermediate_size))
        self.attention_layer_norm.build(hidden_shape)
        self.output_layer_norm.build(hidden_shape)
        self.built = True

    def _split_heads(self, x):
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        x = tf.reshape(x, [batch, length, self.num_attention_heads, self.head_size])
        return tf.transpose(x, [0, 2, 1, 3])

    def call(self, hidden, attention_bias, dropout_key=None):
        keys = [None] * 3 if dropout_key is None else [fold_seed(dropout_key, i) for i in range(3)]
        q = self._split_heads(self.query(hidden))
        k = self._split_heads(self.key(hidden))
        v = self._split_heads(self.value(hidden))
        scores = tf.matmul(q, k, transpose_b=True) * tf.cast(self.head_size ** -0.5, q.dtype)
        # Softmax in float32: half-precision softmax over long rows loses mass.
        probs = tf.nn.softmax(tf.cast(scores, tf.float32) + tf.cast(attention_bias, tf.float32))
        probs = stateless_dropout(tf.cast(probs, v.dtype), self.attention_probs_dropout_prob,
                                  keys[0])
        context = tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3])
        context = tf.reshape(context, tf.shape(hidden))
        attended = stateless_dropout(self.attention_output(context), self.hidden_dropout_prob,
                                     keys[1])
        attended = self.attention_layer_norm(attended + hidden)
        ffn = self.output_dense(self.intermediate(attended))
        ffn = stateless_dropout(ffn, self.hidden_dropout_prob, keys[2])
        return self.output_layer_norm(ffn + attended)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(),
                "hidden_size": self.hidden_size,
                "num_attention_heads": self.num_attention_heads,
                "intermediate_size": self.intermediate_size,
                "hidden_dropout_prob": self.hidden_dropout_prob,
                "attention_probs_dropout_prob": self.attention_probs_dropout_prob,
                "initializer_range": self.initializer_range,
                "layer_norm_eps": self.layer_norm_eps}
