"""AdamWeightDecay against a NumPy transcription of the original's update rule."""

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.training.optimization import AdamWeightDecay


def original_update(param, m, v, grad, lr, decay, wd=0.01, b1=0.9, b2=0.999, eps=1e-6):
    """google-research/electra model/optimization.py AdamWeightDecayOptimizer, one variable."""
    next_m = b1 * m + (1 - b1) * grad
    next_v = b2 * v + (1 - b2) * grad**2
    update = next_m / (np.sqrt(next_v) + eps)
    if decay:
        update += wd * param
    return param - lr * update, next_m, next_v


def _variables(rng):
    import keras

    dense = keras.layers.Dense(3, name="dense")
    dense.build((None, 4))
    dense.kernel.assign(rng.normal(size=(4, 3)))
    dense.bias.assign(rng.normal(size=3))
    return dense


@pytest.mark.parametrize("multiplier", [1.0, 0.5])
def test_three_steps_match_the_original(multiplier):
    rng = np.random.default_rng(0)
    dense = _variables(rng)
    variables = [dense.kernel, dense.bias]
    lrs = [1e-2, 2e-2, 3e-2]
    optimizer = AdamWeightDecay(
        variables,
        lambda step: tf.gather(tf.constant(lrs), step),
        lr_multipliers={dense.kernel.path: multiplier},
    )
    params = [v.numpy().astype(np.float64) for v in variables]
    slots = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    for step in range(3):
        # Large gradients, so global-norm clipping at 1.0 is part of the check.
        grads = [rng.normal(0.0, 3.0, size=p.shape) for p in params]
        norm = np.sqrt(sum((g**2).sum() for g in grads))
        returned_norm = tf.function(optimizer.apply)([tf.constant(g, tf.float32) for g in grads])
        assert float(returned_norm) == pytest.approx(norm, rel=1e-5)
        clipped = [g / max(norm, 1.0) for g in grads]
        for i, decay in enumerate([True, False]):  # the bias is excluded from weight decay
            lr = lrs[step] * (multiplier if i == 0 else 1.0)
            params[i], m, v = original_update(params[i], *slots[i], clipped[i], lr, decay)
            slots[i] = (m, v)
        # TF's fused Adam kernel takes a vectorised square root (~1e-5 relative
        # error); weight decay alone moves a weight by ~1e-4 per step here.
        for variable, expected in zip(variables, params):
            np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=3e-6)
    assert int(optimizer.iterations.numpy()) == 3


def test_skipped_update_changes_nothing():
    rng = np.random.default_rng(1)
    dense = _variables(rng)
    optimizer = AdamWeightDecay([dense.kernel, dense.bias], lambda step: 1e-2)
    before = [v.numpy() for v in (dense.kernel, dense.bias)]
    grads = [tf.fill([4, 3], np.inf), tf.ones([3])]
    tf.function(optimizer.apply)(grads, apply_if=tf.constant(False))
    for variable, value in zip((dense.kernel, dense.bias), before):
        np.testing.assert_array_equal(variable.numpy(), value)
    assert int(optimizer.iterations.numpy()) == 0
    assert not np.any(optimizer.m[0].numpy()) and not np.any(optimizer.v[1].numpy())
    tf.function(optimizer.apply)([tf.ones([4, 3]), tf.ones([3])], apply_if=tf.constant(True))
    assert int(optimizer.iterations.numpy()) == 1 and np.all(optimizer.m[1].numpy() > 0)


def test_slots_are_restored_by_variable_path_not_position(tmp_path):
    import keras

    first, second = keras.layers.Dense(3, name="first"), keras.layers.Dense(3, name="second")
    for layer in (first, second):
        layer.build((None, 3))
    variables = [first.kernel, second.kernel]  # same shape: position would swap them
    optimizer = AdamWeightDecay(variables, lambda step: 1e-2)
    tf.function(optimizer.apply)([tf.ones([3, 3]), -2.0 * tf.ones([3, 3])])
    path = tf.train.Checkpoint(optimizer=optimizer).write(str(tmp_path / "ckpt"))
    saved_values = [v.numpy() for v in variables]
    for v in variables:
        v.assign(tf.zeros_like(v))

    reordered = AdamWeightDecay(variables[::-1], lambda step: 1e-2)
    tf.train.Checkpoint(optimizer=reordered).read(path).assert_consumed()
    for variable, saved in zip(variables, saved_values):
        np.testing.assert_array_equal(variable.numpy(), saved)
    assert reordered.paths == optimizer.paths[::-1]
    for slot, saved in ((reordered.m, optimizer.m[::-1]), (reordered.v, optimizer.v[::-1])):
        for restored, original in zip(slot, saved):
            np.testing.assert_array_equal(restored.numpy(), original.numpy())
    # The first slot is now second's: its gradient was -2 times first's.
    assert np.all(reordered.m[1].numpy() > 0)
    np.testing.assert_allclose(reordered.m[0].numpy(), -2.0 * reordered.m[1].numpy(), rtol=1e-6)


def test_slots_restore_into_another_instance_of_the_model(tmp_path):
    """Keras numbers auto-named models per process; the slots must not depend on that."""
    import keras

    def model():
        net = keras.Sequential(
            [keras.layers.Dense(3, name="proj"), keras.layers.Dense(3, name="out")]
        )
        net.build((None, 3))
        return net

    writer, reader = model(), model()
    assert writer.name != reader.name
    optimizer = AdamWeightDecay(writer.trainable_variables, lambda step: 1e-2)
    tf.function(optimizer.apply)([tf.ones_like(v) for v in writer.trainable_variables])
    path = tf.train.Checkpoint(model=writer, optimizer=optimizer).write(str(tmp_path / "ckpt"))

    restored = AdamWeightDecay(reader.trainable_variables, lambda step: 1e-2)
    tf.train.Checkpoint(model=reader, optimizer=restored).read(path).assert_consumed()
    for mine, theirs in zip(restored.m + restored.v, optimizer.m + optimizer.v):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
