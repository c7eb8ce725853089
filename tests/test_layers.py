"""The hand-differentiated layers against TF/Keras autodiff of the plain formulas."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from electra_tf.model.layers import transformer
from electra_tf.model.layers.dropout import example_keys, fold_seed, stateless_dropout
from electra_tf.model.layers.normalization import LayerNorm
from electra_tf.model.layers.transformer import (
    TransformerLayer,
    attention_bias_from_mask,
    exact_gelu,
)
from electra_tf.training import stateless_random


def _value_and_grads(fn, x, variables=()):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        # A non-uniform upstream gradient, so every term of the backward pass matters.
        loss = tf.reduce_sum(
            y * tf.reshape(tf.sin(tf.range(tf.size(y), dtype=tf.float32)), tf.shape(y))
        )
    return y, tape.gradient(loss, [x, *variables])


def test_layer_norm_matches_keras_values_and_gradients():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, size=(3, 7, 16)), tf.float32)
    gamma, beta = rng.normal(1.0, 0.5, size=16), rng.normal(0.0, 0.5, size=16)
    ours, reference = LayerNorm(epsilon=1e-12), keras.layers.LayerNormalization(epsilon=1e-12)
    for layer in (ours, reference):
        layer.build(x.shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
    y, grads = _value_and_grads(ours, x, [ours.gamma, ours.beta])
    y_ref, grads_ref = _value_and_grads(reference, x, [reference.gamma, reference.beta])
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), atol=1e-5)
    for g, g_ref in zip(grads, grads_ref):
        np.testing.assert_allclose(g.numpy(), g_ref.numpy(), rtol=1e-4, atol=1e-4)
    assert [w.path for w in ours.weights] == [
        w.path.replace("layer_normalization", "layer_norm") for w in reference.weights
    ]


def test_layer_norm_keeps_the_compute_dtype():
    layer = LayerNorm(dtype="mixed_bfloat16")
    y = layer(tf.ones([2, 4, 8], tf.bfloat16))
    assert y.dtype == tf.bfloat16 and layer.gamma.dtype == "float32"


def test_layer_norm_rejects_other_axes():
    with pytest.raises(ValueError, match="last axis"):
        LayerNorm(axis=1).build((2, 3, 4))


def test_exact_gelu_matches_tf_values_and_gradients():
    x = tf.constant(np.linspace(-8.0, 8.0, 401), tf.float32)
    y, (grad,) = _value_and_grads(exact_gelu, x)
    y_ref, (grad_ref,) = _value_and_grads(lambda t: tf.nn.gelu(t, approximate=False), x)
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), atol=1e-6)
    np.testing.assert_allclose(grad.numpy(), grad_ref.numpy(), atol=1e-5)


def test_dropout_rate_scale_and_determinism():
    x = tf.ones([64, 128, 32])
    key = stateless_random.key_from_seed([3, 4])
    y = stateless_dropout(x, 0.1, key).numpy()
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.9)}
    assert abs((y == 0).mean() - 0.1) < 0.003
    np.testing.assert_array_equal(y, stateless_dropout(x, 0.1, key).numpy())
    assert (y != stateless_dropout(x, 0.1, stateless_random.fold(key, 1)).numpy()).mean() > 0.1
    # Traced with an unknown shape, the mask is the uncompiled hash: the same mask.
    dynamic = tf.function(
        lambda x: stateless_dropout(x, 0.1, key), input_signature=[tf.TensorSpec([None, None, 32])]
    )
    np.testing.assert_array_equal(y, dynamic(x).numpy())


def test_folding_a_python_salt_equals_folding_it_as_a_tensor():
    # Python-int salts are hashed in Python (no graph ops); uint32 tensors in the graph.
    keys = tf.constant([0, 1, 0xFFFFFFFF, 123456789], tf.uint32)
    for salt in (0, 1, 7, 2**31 + 5, 2**32 + 3, -1):
        np.testing.assert_array_equal(
            stateless_random.fold(keys, salt).numpy(),
            stateless_random.fold(keys, tf.constant(salt & 0xFFFFFFFF, tf.uint32)).numpy(),
        )


def test_per_example_dropout_masks_do_not_depend_on_the_rest_of_the_batch():
    key = stateless_random.key_from_seed([5, 6])
    x = tf.ones([6, 16, 32])
    keys = example_keys(key, 2, tf.range(10, 16))
    whole = stateless_dropout(x, 0.1, keys).numpy()
    assert abs((whole == 0).mean() - 0.1) < 0.01
    # Rows 0-2 and 3-5 as two micro-batches (or replicas): the same masks.
    for rows in ([0, 1, 2], [3, 4, 5]):
        part = stateless_dropout(tf.gather(x, rows), 0.1, tf.gather(keys, rows)).numpy()
        np.testing.assert_array_equal(part, whole[rows])
    assert (whole[0] != whole[1]).mean() > 0.1
    # Traced with an unknown shape, per-example keys give the same masks.
    dynamic = tf.function(
        lambda x: stateless_dropout(x, 0.1, keys), input_signature=[tf.TensorSpec([None, None, 32])]
    )
    np.testing.assert_array_equal(whole, dynamic(x).numpy())


def _reference_transformer_layer(layer, hidden, bias, dropout_key):
    """The layer's math written plainly, differentiated op by op by TF."""
    batch, length, width = hidden.shape
    heads, rate = layer.num_attention_heads, layer.hidden_dropout_prob
    keys = [fold_seed(dropout_key, i) for i in range(3)]

    def drop(x, key, rate):
        if rate == 0.0:
            return x
        keep = stateless_random.uniform_like(x, key) >= rate
        return tf.where(keep, x / (1.0 - rate), tf.zeros_like(x))

    def split(x):
        return tf.transpose(tf.reshape(x, [batch, length, heads, width // heads]), [0, 2, 1, 3])

    def norm(x, layer_norm):
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) / tf.sqrt(
            variance + layer_norm.epsilon
        ) * layer_norm.gamma + layer_norm.beta

    q, k, v = split(layer.query(hidden)), split(layer.key(hidden)), split(layer.value(hidden))
    scores = tf.matmul(q, k, transpose_b=True) / np.sqrt(width // heads) + bias
    probs = drop(tf.nn.softmax(scores), keys[0], layer.attention_probs_dropout_prob)
    context = tf.reshape(tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3]), hidden.shape)
    attended = norm(
        drop(layer.attention_output(context), keys[1], rate) + hidden, layer.attention_layer_norm
    )
    ffn = layer.output_dense(tf.nn.gelu(layer.intermediate(attended), approximate=False))
    return norm(drop(ffn, keys[2], rate) + attended, layer.output_layer_norm)


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "one_trace_per_shape"])
@pytest.mark.parametrize("dropout", [False, True])
def test_transformer_layer_matches_plain_autodiff(dropout, traced):
    layer = TransformerLayer(
        hidden_size=16,
        num_attention_heads=2,
        intermediate_size=24,
        hidden_dropout_prob=0.2 if dropout else 0.0,
        attention_probs_dropout_prob=0.3 if dropout else 0.0,
    )
    rng = np.random.default_rng(4)
    hidden = tf.constant(rng.normal(size=(3, 6, 16)), tf.float32)
    mask = tf.constant([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4])
    bias = attention_bias_from_mask(mask, tf.float32)
    layer.build(hidden.shape)
    for weight in layer.weights:  # non-trivial LayerNorm and bias values
        weight.assign(weight + rng.normal(0.0, 0.3, size=weight.shape))
    key = stateless_random.key_from_seed([5, 9])
    upstream = tf.constant(rng.normal(size=hidden.shape), tf.float32)

    def output_and_gradients(fn, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.reduce_sum(y * upstream)
        return y, tape.gradient(loss, [x, *layer.trainable_variables])

    def run_layer(x):
        return output_and_gradients(lambda x: layer(x, bias, dropout_key=key), x)

    if traced:  # as the training step runs it: the layer's shared trace, inside a tf.function
        traces = transformer._traced_transformer_block.experimental_get_tracing_count()
        with transformer.one_trace_per_shape():
            y, grads = tf.function(run_layer)(hidden)
        assert transformer._traced_transformer_block.experimental_get_tracing_count() > traces
    else:
        y, grads = run_layer(hidden)
    y_ref, grads_ref = output_and_gradients(
        lambda x: _reference_transformer_layer(layer, x, bias, key), hidden
    )
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), atol=1e-5)
    for variable, g, g_ref in zip(
        ["input", *[v.path for v in layer.trainable_variables]], grads, grads_ref
    ):
        np.testing.assert_allclose(g.numpy(), g_ref.numpy(), rtol=1e-4, atol=1e-5, err_msg=variable)
