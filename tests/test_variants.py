"""Each pre-training variant's defining property, on tiny models."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats as scipy_stats

from electra_tf.data.tokenization import SpecialTokens
from electra_tf.model.config import ElectraConfig, generator_config
from electra_tf.model.layers.dropout import fold_seed
from electra_tf.pretraining import masking
from electra_tf.pretraining import model as model_lib
from electra_tf.pretraining.model import ElectraPretrainer
from electra_tf.training import stateless_random
from electra_tf.training.optimization import AdamWeightDecay, learning_rate_at
from electra_tf.training.trainer import Trainer

SPECIAL = SpecialTokens(pad=0, unk=1, cls=2, sep=3, mask=4)
V = 100


def configs(gen_fraction=0.5, dropout=0.1, hidden=64, layers=2, embedding=32):
    d = ElectraConfig(
        vocab_size=V,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=1,
        intermediate_size=2 * hidden,
        embedding_size=embedding,
        max_position_embeddings=128,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    return d, generator_config(d, gen_fraction, 1.0, False)


def features(batch=4, length=24, seed=0):
    """The batch the pre-change reference loss was recorded on (row 1 is padded)."""
    rng = np.random.RandomState(seed)
    ids = rng.randint(5, V, size=(batch, length)).astype(np.int32)
    ids[:, 0], ids[:, -1] = SPECIAL.cls, SPECIAL.sep
    mask = np.ones_like(ids)
    mask[1, 18:], ids[1, 18:], ids[1, 17] = 0, 0, SPECIAL.sep
    return {
        "input_ids": tf.constant(ids),
        "input_mask": tf.constant(mask),
        "segment_ids": tf.zeros_like(ids),
    }


def make(seed=1234, gen_fraction=0.5, dropout=0.1, max_predictions=5, layers=2, **kwargs):
    keras.utils.set_random_seed(seed)
    d, g = configs(gen_fraction, dropout, layers=layers)
    model = ElectraPretrainer(d, g, SPECIAL, max_predictions_per_seq=max_predictions, **kwargs)
    model.build()
    return model


KEY = stateless_random.key_from_seed(tf.constant([7, 9]))


def run(model, feats, key=KEY, training=True):
    denominators = model.loss_denominators(feats)
    batch = feats["input_ids"].shape[0]
    return model.compute_loss_and_stats(
        feats, denominators, key, tf.range(batch), training=training
    )


def masked_hits(model, feats, key=KEY):
    """[B, L] bool: the positions the model masks for this key."""
    masked = masking.mask_inputs(
        feats,
        SPECIAL,
        mask_prob=model.mask_prob,
        max_predictions=model.max_predictions_per_seq,
        key=fold_seed(key, model_lib._MASK_SALT),
        example_index=tf.range(feats["input_ids"].shape[0]),
    )
    _, hit = masking.scatter_positions(
        masked.masked_lm_weights,
        masked.masked_lm_positions,
        masked.masked_lm_weights,
        feats["input_ids"].shape[1],
    )
    return hit


def patch_output(monkeypatch, layer, transform, record=None):
    """Wraps `layer.call` so its output goes through transform(output, *args)."""
    original = layer.call

    def call(*args, **kwargs):
        out = original(*args, **kwargs)
        if record is not None:
            record.append((args, out))
        return transform(out, *args)

    monkeypatch.setattr(layer, "call", call)


# --------------------------------------------------------------------- default


def test_default_objective_unchanged():
    """The loss recorded before the variants were added (same seed, batch and key).

    The discriminator's numbers were re-recorded when generator sampling moved
    from Gumbel-max to inverse-CDF draws (other samples from the same
    distribution), and all three when dropout masks became per example
    (other masks at the same rate; the generator's MLM loss had been the one
    first recorded: 69.44425201416016).
    """
    model = make()
    loss, stats = run(model, features())
    np.testing.assert_allclose(float(loss), 39.092525482177734, rtol=1e-6)
    np.testing.assert_allclose(float(stats["masked_lm_loss_sum"]), 69.38843536376953, rtol=1e-6)
    np.testing.assert_allclose(float(stats["disc_loss_sum"]), 62.03993225097656, rtol=1e-6)
    assert model.objective == "electra" and model.embedding_sharing == "embeddings"
    assert model.generator.embeddings is model.discriminator.embeddings


# --------------------------------------------------------------------- electra_15


def test_electra_15_ignores_unmasked_positions(monkeypatch):
    feats = features()
    results = {}
    for objective in ("electra_15", "electra"):
        for perturb in (False, True):
            model = make(objective=objective)
            hit = tf.cast(masked_hits(model, feats), tf.float32)
            if perturb:
                patch_output(
                    monkeypatch,
                    model.discriminator_predictions,
                    lambda out, *a, hit=hit: out + 7.0 * (1.0 - hit),
                )
            results[objective, perturb] = float(run(model, feats)[0])
    assert results["electra_15", True] == pytest.approx(results["electra_15", False], rel=1e-6)
    assert results["electra", True] != pytest.approx(results["electra", False], rel=1e-3)


# --------------------------------------------------------------------- gdes


def test_gdes_gradients():
    feats = features()
    model = make(embedding_sharing="gdes", disc_weight=50.0, gen_weight=0.0)
    e_g = model.generator.embeddings.word_embeddings
    delta = model.discriminator.embeddings.word_embeddings_delta
    assert not np.any(delta.numpy())
    with tf.GradientTape() as tape:
        loss, _ = run(model, feats)
    g_shared, g_delta = tape.gradient(loss, [e_g, delta])
    # RTD loss alone (gen_weight 0): nothing reaches E_G, E_delta learns.
    assert g_shared is None or not np.any(tf.convert_to_tensor(g_shared).numpy())
    assert np.any(tf.convert_to_tensor(g_delta).numpy())

    model = make(embedding_sharing="gdes", disc_weight=0.0, gen_weight=1.0)
    e_g = model.generator.embeddings.word_embeddings
    delta = model.discriminator.embeddings.word_embeddings_delta
    with tf.GradientTape() as tape:
        loss, _ = run(model, feats)
    g_shared, g_delta = tape.gradient(loss, [e_g, delta])
    assert np.any(tf.convert_to_tensor(g_shared).numpy())
    assert g_delta is None or not np.any(tf.convert_to_tensor(g_delta).numpy())


def test_gdes_export_is_a_plain_encoder_with_the_same_outputs():
    model = make(embedding_sharing="gdes")
    model.discriminator.embeddings.word_embeddings_delta.assign(
        tf.random.normal([V, 32], stddev=0.1)
    )
    feats = features()
    exported = model.discriminator_for_export()
    assert type(exported.embeddings).__name__ == "ElectraEmbeddings"
    np.testing.assert_allclose(
        exported(feats).numpy(), model.discriminator(feats).numpy(), atol=1e-5
    )


# --------------------------------------------------------------------- two_stage


def build_trainer(model, jit_compile=True, seed=0):
    strategy = tf.distribute.get_strategy()
    schedule = functools.partial(
        learning_rate_at, base_learning_rate=1e-3, num_train_steps=1000, num_warmup_steps=0
    )
    optimizer = AdamWeightDecay(model.trainable_variables, schedule)
    return Trainer(strategy, model, optimizer, jit_compile=jit_compile, seed=seed)


def batches(batch=4, length=24):
    feats = {k: v.numpy() for k, v in features(batch, length).items()}
    dataset = tf.data.Dataset.from_tensors(feats).repeat()
    return iter(dataset.map(lambda f: {k: v[None] for k, v in f.items()}))


def test_two_stage_requires_same_size():
    with pytest.raises(ValueError, match="same size"):
        make(generator_training="two_stage", gen_fraction=0.5)


def test_two_stage_discriminator_starts_from_generator():
    """Through the real (XLA) train step, both stages."""
    model = make(generator_training="two_stage", gen_fraction=1.0, dropout=0.0, layers=1)
    trainer = build_trainer(model)
    iterator = batches()
    d_before = [w.numpy() for w in model.discriminator.transformer_layers[0].weights]
    g_before = [w.numpy() for w in model.generator.transformer_layers[0].weights]
    sums = trainer.train(iterator, 2)  # stage one: G alone
    assert sums["disc_loss_sum"] == 0.0 and np.isfinite(sums["loss"])
    g_after = [w.numpy() for w in model.generator.transformer_layers[0].weights]
    assert any(not np.allclose(a, b) for a, b in zip(g_before, g_after))
    # D's Adam moments stayed zero: it got no gradient in stage one.
    d_index = [
        i for i, v in enumerate(trainer.optimizer._variables) if "/electra/layer_0/" in "/" + v.path
    ]
    assert d_index and all(not np.any(trainer.optimizer.m[i].numpy()) for i in d_index)
    assert any(not np.allclose(a, b) for a, b in zip(d_before, g_after))

    model.start_second_stage()
    assert model.in_second_stage()
    for d_var, g_var in zip(model.discriminator.weights, model.generator.weights):
        np.testing.assert_array_equal(d_var.numpy(), g_var.numpy())
    frozen = [w.numpy() for w in model.frozen_generator.weights]
    # The stage is fixed when the step is traced: stage two needs a new trace.
    trainer = Trainer(tf.distribute.get_strategy(), model, trainer.optimizer, seed=1)
    sums = trainer.train(iterator, 2)  # stage two: D alone, G frozen
    assert sums["disc_loss_sum"] > 0.0
    for before, var in zip(frozen, model.frozen_generator.weights):
        np.testing.assert_array_equal(before, var.numpy())


# --------------------------------------------------------------------- all_tokens_mlm


def test_all_tokens_mlm_predicts_every_position(monkeypatch):
    feats = features()
    model = make(objective="all_tokens_mlm", dropout=0.0)
    base = float(run(model, feats)[0])
    hit = masked_hits(model, feats).numpy()
    row, col = [(r, c) for r in range(4) for c in range(1, 10) if not hit[r, c]][0]
    token = int(feats["input_ids"][row, col])
    bump = np.zeros([4, 24, V], np.float32)
    bump[row, col, token] = 5.0  # raise the unmasked token's probability
    patch_output(monkeypatch, model.mlm_predictions, lambda out, *a: out + bump)
    changed = float(run(model, feats)[0])
    assert changed < base - 1e-4


def test_all_tokens_mlm_copy_mechanism(monkeypatch):
    """-log p(x_t), p = c 1[x_t = input_t] + (1 - c) softmax_t(x_t), over every real token."""
    feats = features()
    model = make(objective="all_tokens_mlm", dropout=0.0)
    patch_output(monkeypatch, model.discriminator_predictions, lambda out, *a: out * 0.0 + 2.0)
    record, disc_in = [], []
    patch_output(monkeypatch, model.mlm_predictions, lambda out, *a: out, record)
    patch_output(monkeypatch, model.discriminator, lambda out, *a: out, disc_in)
    _, stats = run(model, feats)
    probs = tf.nn.softmax(record[-1][1]).numpy()
    ids = feats["input_ids"].numpy()
    fake = disc_in[-1][0][0]["input_ids"].numpy()
    mask = feats["input_mask"].numpy()
    c = 1.0 / (1.0 + np.exp(-2.0))
    p_label = np.take_along_axis(probs, ids[..., None], axis=-1)[..., 0]
    p = c * (fake == ids) + (1.0 - c) * p_label
    assert np.any(fake != ids)
    np.testing.assert_allclose(
        float(stats["disc_mlm_loss_sum"]), -(np.log(p) * mask).sum(), rtol=1e-5
    )
    assert float(stats["disc_mlm_tokens"]) == mask.sum()


# --------------------------------------------------------------------- mlm


def test_mlm_uses_80_10_10(monkeypatch):
    record = []
    original = masking.mask_inputs

    def recording(*args, **kwargs):
        out = original(*args, **kwargs)
        record.append(out)
        return out

    monkeypatch.setattr(model_lib.masking, "mask_inputs", recording)
    model = make(objective="mlm", max_predictions=20)
    assert model.generator is None and model.generator_predictions is None
    rng = np.random.RandomState(3)
    ids = rng.randint(5, V, size=(256, 128)).astype(np.int32)
    ids[:, 0], ids[:, -1] = SPECIAL.cls, SPECIAL.sep
    feats = {
        "input_ids": tf.constant(ids),
        "input_mask": tf.ones_like(ids),
        "segment_ids": tf.zeros_like(ids),
    }
    run(model, feats)
    masked = record[-1]
    w = masked.masked_lm_weights.numpy() > 0
    new = tf.gather(masked.input_ids, masked.masked_lm_positions, batch_dims=1).numpy()[w]
    orig = masked.masked_lm_ids.numpy()[w]
    n = len(orig)
    assert n > 4000
    frac_mask = np.mean(new == SPECIAL.mask)
    frac_kept = np.mean(new == orig)
    frac_random = np.mean((new != SPECIAL.mask) & (new != orig))
    assert abs(frac_mask - 0.8) < 0.03
    # A random token equals the original with probability 1/V.
    assert abs(frac_random - 0.1 * (1 - 1 / V)) < 0.02
    assert abs(frac_kept - (0.1 + 0.1 / V)) < 0.02
    # Unmasked positions are untouched.
    assert int(tf.reduce_sum(tf.cast(masked.input_ids != feats["input_ids"], tf.int32))) <= n


# --------------------------------------------------------------------- replace_mlm


def test_replace_mlm_discriminator_sees_no_mask(monkeypatch):
    model = make(objective="replace_mlm")
    record = []
    patch_output(monkeypatch, model.discriminator, lambda out, *a: out, record)
    gen_record = []
    patch_output(monkeypatch, model.generator, lambda out, *a: out, gen_record)
    loss, stats = run(model, features())
    d_inputs = record[-1][0][0]["input_ids"].numpy()
    assert not np.any(d_inputs == SPECIAL.mask)
    assert np.any(gen_record[-1][0][0]["input_ids"].numpy() == SPECIAL.mask)
    assert model.discriminator_predictions is None
    assert np.isfinite(float(loss)) and float(stats["disc_mlm_loss_sum"]) > 0


# --------------------------------------------------------------------- electric


def test_electric_labels_and_logit_offset(monkeypatch):
    feats = features()
    model = make(objective="electric", dropout=0.0)
    assert model.generator is None and model.two_tower is not None
    patch_output(monkeypatch, model.discriminator_predictions, lambda out, *a: out * 0.0)
    cloze, disc_in = [], []
    patch_output(monkeypatch, model.generator_predictions, lambda out, *a: out, cloze)
    patch_output(monkeypatch, model.discriminator, lambda out, *a: out, disc_in)
    _, stats = run(model, feats)
    cloze_logits = cloze[-1][1]
    fake_ids = disc_in[-1][0][0]["input_ids"]
    hit = masked_hits(model, feats).numpy().astype(np.float32)
    mask = feats["input_mask"].numpy().astype(np.float32)
    log_q = -tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=fake_ids, logits=cloze_logits
    ).numpy()
    logits = (log_q + np.log(0.15 / 0.85)).astype(np.float32)
    expected = tf.nn.sigmoid_cross_entropy_with_logits(labels=hit * mask, logits=logits).numpy()
    np.testing.assert_allclose(float(stats["disc_loss_sum"]), (expected * mask).sum(), rtol=1e-5)
    assert float(stats["disc_label_positives"]) == hit.sum()


def test_electric_cloze_does_not_see_its_own_token():
    """Changing token t leaves position t's cloze distribution unchanged."""
    model = make(objective="electric", dropout=0.0)
    feats = features()
    hidden = model.two_tower(feats).numpy()
    ids = feats["input_ids"].numpy().copy()
    ids[0, 5] = 7 if ids[0, 5] != 7 else 8
    hidden2 = model.two_tower({**feats, "input_ids": tf.constant(ids)}).numpy()
    np.testing.assert_allclose(hidden[0, 5], hidden2[0, 5], atol=1e-5)
    assert not np.allclose(hidden[0, 6], hidden2[0, 6], atol=1e-5)
    assert not np.allclose(hidden[0, 4], hidden2[0, 4], atol=1e-5)


# --------------------------------------------------------------------- adversarial


def generator_only_variables(model):
    shared = {id(v) for v in model.discriminator.trainable_variables}
    return [
        v
        for v in model.generator.trainable_variables
        + model.generator_predictions.trainable_variables
        if id(v) not in shared
    ]


def test_adversarial_generator_gradient_comes_from_rtd_reward(monkeypatch):
    feats = features()
    model = make(generator_training="adversarial")
    with tf.GradientTape() as tape:
        loss, stats = run(model, feats)
    grads = tape.gradient(loss, generator_only_variables(model))
    assert any(g is not None and np.any(tf.convert_to_tensor(g).numpy()) for g in grads)
    assert float(stats["adversarial_reward_sum"]) > 0

    # The baseline is the previous step's mean reward over the global batch.
    model.after_step(stats)
    np.testing.assert_allclose(
        float(model.reward_baseline),
        float(stats["adversarial_reward_sum"] / stats["masked_tokens"]),
    )

    # A discriminator whose loss is the same everywhere (log 2) gives every
    # sample the reward the baseline holds: reward - baseline = 0, so no
    # gradient reaches G (no MLM term).
    model = make(generator_training="adversarial", disallow_correct=True)
    model.reward_baseline.assign(np.log(2.0))
    patch_output(monkeypatch, model.discriminator_predictions, lambda out, *a: out * 0.0)
    with tf.GradientTape() as tape:
        loss, _ = run(model, feats)
    grads = tape.gradient(loss, generator_only_variables(model))
    assert all(g is None or np.abs(tf.convert_to_tensor(g).numpy()).max() < 1e-6 for g in grads)


def test_adversarial_log_probs_are_those_of_the_sampled_distribution(monkeypatch):
    """With disallow_correct the policy that sampled excludes the original token."""
    feats = features()
    model = make(generator_training="adversarial", disallow_correct=True)
    recorded = []
    patch_output(monkeypatch, model.generator_predictions, lambda out, *a: out, recorded)
    # Every position's reward is then log 2; the baseline is still 0.
    patch_output(monkeypatch, model.discriminator_predictions, lambda out, *a: out * 0.0)
    loss, _ = run(model, feats)

    batch = feats["input_ids"].shape[0]
    masked = masking.mask_inputs(
        feats,
        SPECIAL,
        mask_prob=model.mask_prob,
        max_predictions=model.max_predictions_per_seq,
        key=fold_seed(KEY, model_lib._MASK_SALT),
        example_index=tf.range(batch),
    )
    ((_, mlm_logits),) = recorded
    sampled = masking.sample_tokens(
        mlm_logits,
        fold_seed(KEY, model_lib._SAMPLE_SALT),
        tf.range(batch),
        disallow_ids=masked.masked_lm_ids,
    )
    restricted = mlm_logits - 1000.0 * tf.one_hot(masked.masked_lm_ids, mlm_logits.shape[-1])
    log_prob = tf.gather(tf.nn.log_softmax(restricted), sampled, batch_dims=2)
    weights = masked.masked_lm_weights
    generator_loss = -np.log(2.0) * tf.reduce_sum(log_prob * weights) / tf.reduce_sum(weights)
    discriminator_loss = model.disc_weight * np.log(2.0)
    np.testing.assert_allclose(float(loss), float(generator_loss) + discriminator_loss, rtol=1e-5)


# --------------------------------------------------------------------- uniform


def test_uniform_generator_samples_uniformly(monkeypatch):
    model = make(uniform_generator=True, max_predictions=20)
    assert model.generator is None and model.generator_predictions is None
    record = []
    patch_output(monkeypatch, model.discriminator, lambda out, *a: out, record)
    rng = np.random.RandomState(5)
    ids = rng.randint(5, V, size=(256, 128)).astype(np.int32)
    ids[:, 0], ids[:, -1] = SPECIAL.cls, SPECIAL.sep
    feats = {
        "input_ids": tf.constant(ids),
        "input_mask": tf.ones_like(ids),
        "segment_ids": tf.zeros_like(ids),
    }
    masked = masking.mask_inputs(
        feats,
        SPECIAL,
        mask_prob=0.15,
        max_predictions=20,
        key=fold_seed(KEY, model_lib._MASK_SALT),
        example_index=tf.range(256),
    )
    run(model, feats)
    fake = record[-1][0][0]["input_ids"]
    sampled = tf.gather(fake, masked.masked_lm_positions, batch_dims=1).numpy()
    sampled = sampled[masked.masked_lm_weights.numpy() > 0]
    counts = np.bincount(sampled, minlength=V)
    _, p_value = scipy_stats.chisquare(counts)
    assert p_value > 1e-3, p_value
    assert len(sampled) > 4000


# --------------------------------------------------------------------- sharing


def test_embedding_sharing_aliases_and_validation():
    assert make(untied_generator_embeddings=True).embedding_sharing == "none"
    with pytest.raises(ValueError, match="untied_generator_embeddings"):
        make(untied_generator_embeddings=True, embedding_sharing="embeddings")
    with pytest.raises(ValueError, match="same size|discriminator's size"):
        make(embedding_sharing="all", gen_fraction=0.5)
    with pytest.raises(ValueError):
        make(untied_generator=False, embedding_sharing="none", gen_fraction=1.0)
    model = make(untied_generator=False, gen_fraction=1.0)
    assert model.embedding_sharing == "all" and model.generator is model.discriminator
    none = make(embedding_sharing="none")
    assert none.generator.embeddings is not none.discriminator.embeddings


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(objective="electra_15"),
        dict(objective="replace_mlm"),
        dict(objective="all_tokens_mlm"),
        dict(objective="mlm"),
        dict(objective="electric"),
        dict(generator_training="adversarial"),
        dict(uniform_generator=True),
        dict(embedding_sharing="none"),
        dict(embedding_sharing="gdes"),
        dict(embedding_sharing="all", gen_fraction=1.0),
    ],
    ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()),
)
def test_every_variant_trains(kwargs):
    """What Trainer needs: a finite loss and a gradient for every trainable variable."""
    model = make(**kwargs)
    paths = [v.path for v in model.trainable_variables]
    assert len(paths) == len(set(paths))
    AdamWeightDecay(model.trainable_variables, lambda step: 1e-3)  # unique paths, builds slots
    with tf.GradientTape() as tape:
        loss, stats = run(model, features())
    grads = tape.gradient(loss, model.trainable_variables)
    assert not [p for p, g in zip(paths, grads) if g is None]
    assert np.isfinite(float(loss))
    assert all(np.isfinite(float(v)) for v in tf.nest.flatten(stats) if v.shape.rank == 0)
    nonzero = [bool(np.any(tf.convert_to_tensor(g).numpy())) for g in grads]
    assert sum(nonzero) > len(nonzero) // 2
