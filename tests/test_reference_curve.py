"""The HF-PyTorch reference of experiments.reference_curve: its settings and a short run."""

import math
import os

import pytest
from absl import app
from test_run_pretraining import corpus  # noqa: F401  (fixture)

from electra_tf.data import pretraining_input, tokenization
from electra_tf.experiments import reference_curve
from electra_tf.pretraining.settings import PretrainingSettings

DEMO_FLAGS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs", "demo.flags")


def test_reference_reads_run_pretraining_settings_with_later_flags_winning():
    settings = reference_curve.reference_settings(
        DEMO_FLAGS, ["--learning_rate=3e-4", "--train_batch_size=8"]
    )
    assert settings == PretrainingSettings.from_flags(
        [f"--flagfile={DEMO_FLAGS}", "--learning_rate=3e-4", "--train_batch_size=8"]
    )
    assert (settings.learning_rate, settings.train_batch_size, settings.temperature) == (
        3e-4,
        8,
        2.0,
    )
    discriminator, generator = settings.model_configs(1000)
    assert (discriminator.hidden_size, generator.hidden_size) == (128, 32)


@pytest.mark.parametrize(
    "flag",
    [
        "--objective=mlm",
        "--generator_training=adversarial",
        "--uniform_generator",
        "--untied_generator_embeddings",
        "--disallow_correct",
        "--lr_decay_power=2.0",
    ],
)
def test_reference_refuses_what_it_does_not_implement(flag):
    with pytest.raises(app.UsageError, match=f"paper's ELECTRA only, not {flag}"):
        reference_curve.reference_settings(DEMO_FLAGS, [flag])


def test_reference_refuses_an_unknown_flag():
    with pytest.raises(app.UsageError, match="generator_size"):
        reference_curve.reference_settings(DEMO_FLAGS, ["--generator_size=0.5"])


def test_reference_trains_and_logs_windows(corpus):  # noqa: F811
    settings = reference_curve.reference_settings(
        DEMO_FLAGS, ["--train_batch_size=8", "--num_warmup_steps=2"]
    )
    vocab = tokenization.load_vocab(str(corpus["vocab"]))
    dataset = pretraining_input.pretraining_dataset(
        corpus["records"], settings.max_seq_length, settings.train_batch_size, is_training=True
    )
    rows = []
    reference_curve.train_reference(
        settings, len(vocab), tokenization.special_token_ids(vocab), dataset, 6, 3, 0, rows.append
    )
    assert [row["step"] for row in rows] == [3, 6]
    for row in rows:
        assert 0.0 <= row["disc_auc"] <= 1.0 and 0.0 <= row["masked_lm_accuracy"] <= 1.0
        assert all(math.isfinite(v) for v in row.values()), row
