"""Post-LayerNorm transformer layer (BERT/ELECTRA) with explicit attention biases."""

import contextlib
import math

import keras
import tensorflow as tf

from electra_tf.model.layers.dropout import apply_dropout, fold_seed, is_active, stateless_dropout
from electra_tf.model.layers.normalization import LayerNorm, float32_layer_norm
from electra_tf.training import stateless_random


def attention_bias_from_mask(input_mask, dtype):
    """[B, L] 0/1 padding mask -> [B, 1, 1, L] additive bias (0 keep, -10000 drop).

    -10000 (the original's constant) rather than -inf keeps fully padded rows
    finite and fits in float16.
    """
    keep = tf.cast(input_mask, tf.float32)[:, tf.newaxis, tf.newaxis, :]
    return tf.cast((1.0 - keep) * -10000.0, dtype)


def _normal_cdf(x):
    return 0.5 * (1.0 + tf.math.erf(x * (2.0**-0.5)))


def _gelu_derivative(x, cdf):
    return cdf + x * tf.exp(-0.5 * tf.square(x)) * ((2.0 * math.pi) ** -0.5)


def _recompute_from(x, upstream):
    """x, for recomputing a forward value in the backward pass once `upstream` exists.

    Without the dependency, Grappler's common-subexpression elimination
    merges the recomputation with the forward pass's identical ops and keeps
    their outputs alive after all, undoing the memory saving.
    """
    with tf.control_dependencies([upstream]):
        return tf.identity(x)


@tf.custom_gradient
def exact_gelu(x):
    """x * Phi(x) (erf form, as BERT/ELECTRA), whose gradient keeps only x.

    Differentiated op by op, the erf form keeps four tensors of x's size
    alive for the backward pass; recomputing Phi(x) there is cheaper.
    """

    def backward(upstream):
        x_again = _recompute_from(x, upstream)
        return upstream * _gelu_derivative(x_again, _normal_cdf(x_again))

    return x * _normal_cdf(x), backward


def feed_forward(x, w1, b1, w2, b2):
    """exact_gelu(x w1 + b1) w2 + b2 over the last axis of x (weights in x's dtype).

    The backward pass keeps x and the pre-activation only and recomputes the
    GELU output, the largest activation of a layer, from the
    pre-activation: about a fifth less activation memory per train step.
    """
    units = w2.shape[-1]
    out_shape = tf.concat([tf.shape(x)[:-1], [units]], 0)

    @tf.custom_gradient
    def forward(x, w1, b1, w2, b2):
        rows = tf.reshape(x, [-1, x.shape[-1]])
        pre = tf.nn.bias_add(tf.matmul(rows, w1), b1)
        y = tf.nn.bias_add(tf.matmul(pre * _normal_cdf(pre), w2), b2)

        def backward(upstream):
            upstream = tf.reshape(upstream, [-1, units])
            pre_again = _recompute_from(pre, upstream)
            cdf = _normal_cdf(pre_again)
            activation = pre_again * cdf
            grad_pre = tf.matmul(upstream, w2, transpose_b=True) * _gelu_derivative(pre_again, cdf)
            return (
                tf.reshape(tf.matmul(grad_pre, w1, transpose_b=True), tf.shape(x)),
                tf.matmul(rows, grad_pre, transpose_a=True),
                tf.reduce_sum(grad_pre, 0),
                tf.matmul(activation, upstream, transpose_a=True),
                tf.reduce_sum(upstream, 0),
            )

        return tf.reshape(y, out_shape), backward

    return forward(x, w1, b1, w2, b2)


def dot_product_attention(q, k, v, attention_bias, dropout_rate=0.0, dropout_key=None):
    """dropout(softmax(q k^T + bias)) v over [batch, heads, length, head_size] (q pre-scaled).

    The softmax runs in float32. The backward pass keeps the probabilities
    and the dropout mask and recomputes their dropped-out product, instead of
    keeping both [batch, heads, length, length] tensors.
    """
    dropout = is_active(dropout_rate, dropout_key)
    bias = tf.cast(attention_bias, tf.float32)

    @tf.custom_gradient
    def forward(q, k, v):
        probs = tf.cast(
            tf.nn.softmax(tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32) + bias), v.dtype
        )
        keep = stateless_random.keep_mask(probs, dropout_rate, dropout_key) if dropout else None

        def dropped(x):
            return apply_dropout(x, keep, dropout_rate) if dropout else x

        def backward(grad_context):
            grad_v = tf.matmul(
                dropped(_recompute_from(probs, grad_context)), grad_context, transpose_a=True
            )
            grad_probs = tf.cast(dropped(tf.matmul(grad_context, v, transpose_b=True)), tf.float32)
            probs32 = tf.cast(probs, tf.float32)
            grad_scores = tf.cast(
                probs32
                * (grad_probs - tf.reduce_sum(grad_probs * probs32, axis=-1, keepdims=True)),
                q.dtype,
            )
            return (tf.matmul(grad_scores, k), tf.matmul(grad_scores, q, transpose_a=True), grad_v)

        return tf.matmul(dropped(probs), v), backward

    return forward(q, k, v)


def truncated_normal_dense(units, initializer_range, name, dtype, activation=None):
    """A Dense layer initialized as BERT / ELECTRA do (truncated normal, stddev initializer_range).

    Every projection in the encoder and heads is built here, so a checkpoint from any of them
    starts from the same distribution the original TF1 code used.
    """
    return keras.layers.Dense(
        units,
        activation=activation,
        name=name,
        dtype=dtype,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
    )


@keras.saving.register_keras_serializable(package="electra_tf")
class TransformerLayer(keras.layers.Layer):
    """Self-attention + feed-forward block, each followed by residual + LayerNorm.

    The sub-layers hold the weights (and their checkpoint names); `call` passes
    them to `_transformer_block`, which computes the layer.
    """

    def __init__(
        self,
        hidden_size,
        num_attention_heads,
        intermediate_size,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size {hidden_size} is not divisible by "
                f"num_attention_heads {num_attention_heads}"
            )
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
            return truncated_normal_dense(units, initializer_range, name, policy, activation)

        self.query = dense(hidden_size, "query")
        self.key = dense(hidden_size, "key")
        self.value = dense(hidden_size, "value")
        self.attention_output = dense(hidden_size, "attention_output")
        self.attention_layer_norm = LayerNorm(
            epsilon=layer_norm_eps, dtype=policy, name="attention_layer_norm"
        )
        # GELU is applied by feed_forward(), which owns the FFN's backward pass.
        self.intermediate = dense(intermediate_size, "intermediate")
        self.output_dense = dense(hidden_size, "output")
        self.output_layer_norm = LayerNorm(
            epsilon=layer_norm_eps, dtype=policy, name="output_layer_norm"
        )

    def build(self, input_shape):
        hidden_shape = (None, None, self.hidden_size)
        for layer in (self.query, self.key, self.value, self.attention_output, self.intermediate):
            layer.build(hidden_shape)
        self.output_dense.build((None, None, self.intermediate_size))
        self.attention_layer_norm.build(hidden_shape)
        self.output_layer_norm.build(hidden_shape)
        self.built = True

    def call(self, hidden, attention_bias, dropout_key=None):
        weights = {}
        for name, layer in self._weight_layers.items():
            # As the layers themselves compute: Dense in the compute dtype, LayerNorm in float32.
            if isinstance(layer, LayerNorm):
                parts, dtype = ("gamma", "beta"), tf.float32
            else:
                parts, dtype = ("kernel", "bias"), hidden.dtype
            for part in parts:
                weights[f"{name}/{part}"] = tf.cast(getattr(layer, part), dtype)
        shared = tf.inside_function() and _one_trace_per_shape["enabled"]
        block = _traced_transformer_block if shared else _transformer_block
        return block(
            hidden,
            attention_bias,
            weights,
            dropout_key,
            (
                self.num_attention_heads,
                self.head_size,
                self.attention_probs_dropout_prob,
                self.hidden_dropout_prob,
                self.layer_norm_eps,
            ),
        )

    @property
    def _weight_layers(self):
        return {
            "query": self.query,
            "key": self.key,
            "value": self.value,
            "attention_output": self.attention_output,
            "attention_layer_norm": self.attention_layer_norm,
            "intermediate": self.intermediate,
            "output": self.output_dense,
            "output_layer_norm": self.output_layer_norm,
        }

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_dropout_prob": self.hidden_dropout_prob,
            "attention_probs_dropout_prob": self.attention_probs_dropout_prob,
            "initializer_range": self.initializer_range,
            "layer_norm_eps": self.layer_norm_eps,
        }


def _dense(x, weights, name):
    """What keras.layers.Dense computes, from the layer's weights in `weights`."""
    return keras.ops.add(keras.ops.matmul(x, weights[f"{name}/kernel"]), weights[f"{name}/bias"])


def _layer_norm(x, weights, name, epsilon):
    """What LayerNorm computes, from the layer's weights in `weights`."""
    return float32_layer_norm(x, weights[f"{name}/gamma"], weights[f"{name}/beta"], epsilon)


def _transformer_block(hidden, attention_bias, weights, dropout_key, hyperparameters):
    """One post-LayerNorm transformer layer, from its weights ({"query/kernel": ...})."""
    num_heads, head_size, attention_dropout, hidden_dropout, epsilon = hyperparameters
    keys = [None] * 3 if dropout_key is None else [fold_seed(dropout_key, i) for i in range(3)]
    batch, length = tf.shape(hidden)[0], tf.shape(hidden)[1]

    def split_heads(x):
        x = tf.reshape(x, [batch, length, num_heads, head_size])
        return tf.transpose(x, [0, 2, 1, 3])

    # Scaling q rather than the scores touches L * head_size values, not L * L.
    q = split_heads(_dense(hidden, weights, "query") * tf.cast(head_size**-0.5, hidden.dtype))
    k = split_heads(_dense(hidden, weights, "key"))
    v = split_heads(_dense(hidden, weights, "value"))
    context = dot_product_attention(q, k, v, attention_bias, attention_dropout, keys[0])
    context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), tf.shape(hidden))
    attended = stateless_dropout(
        _dense(context, weights, "attention_output"), hidden_dropout, keys[1]
    )
    attended = _layer_norm(attended + hidden, weights, "attention_layer_norm", epsilon)
    ffn = feed_forward(
        attended,
        weights["intermediate/kernel"],
        weights["intermediate/bias"],
        weights["output/kernel"],
        weights["output/bias"],
    )
    ffn = stateless_dropout(ffn, hidden_dropout, keys[2])
    return _layer_norm(ffn + attended, weights, "output_layer_norm", epsilon)


# Inside a traced step, one trace serves every layer of an encoder: the layers differ only in
# their weights, which are arguments, so the layer and its gradient are traced once per shape
# rather than once per layer (half the operations tracing builds for the pre-training step;
# bench/RESULTS.md).
_traced_transformer_block = tf.function(_transformer_block, autograph=False)
_one_trace_per_shape = {"enabled": False}


@contextlib.contextmanager
def one_trace_per_shape(enabled=True):
    """While tracing inside, the transformer layers share one trace per input shape.

    For steps run by TensorFlow's executor (the CPU default). Not for XLA: a
    jit-compiled step with the shared trace compiled 2-3x slower (the
    XLA split-equivalence test: 113 -> 307 s), so it traces each layer.
    A plain dict, not thread-local: MirroredStrategy traces replicas in threads.
    """
    previous = _one_trace_per_shape["enabled"]
    _one_trace_per_shape["enabled"] = enabled
    try:
        yield
    finally:
        _one_trace_per_shape["enabled"] = previous
