"""FLOPs counting: the paper's totals, and the per-variant accounting."""

import pytest

from electra_tf.model.config import generator_config, preset
from electra_tf.pretraining import flops

# What google-research/electra's flops_computation.py prints (MODEL_FLOPS).
PAPER_PRINTED = {
    "electra_small": 1.293743798272e18,
    "electra_base": 6.424541834277683e19,
    "bert_small": 1.4187399146496e18,
    "bert_base": 6.428335104e19,
}


def test_electra_small_and_base_match_the_paper():
    small = flops.paper_electra_train_flops(256, 12, 64, 12, 128, 1e6, True, s=128, e=128)
    base = flops.paper_electra_train_flops(768, 12, 256, 12, 256, 766000, True)
    assert small == pytest.approx(PAPER_PRINTED["electra_small"], rel=0.01)
    assert base == pytest.approx(PAPER_PRINTED["electra_base"], rel=0.01)


def test_bert_small_and_base_match_the_paper():
    small = flops.paper_transformer_train_flops(256, 12, 128, 1.45e6, seq_length=128, embedding=128)
    base = flops.paper_transformer_train_flops(768, 12, 256, 1e6)
    assert small == pytest.approx(PAPER_PRINTED["bert_small"], rel=0.01)
    assert base == pytest.approx(PAPER_PRINTED["bert_base"], rel=0.01)


def small_configs(gen_fraction=0.25):
    d = preset("small")
    return d, generator_config(d, gen_fraction, 1.0, False)


def test_variant_accounting_reproduces_the_paper_under_its_convention():
    """ELECTRA-Small through the variant API (PAPER convention, output_frac 20/128)."""
    d, g = small_configs(0.25)
    per_step = flops.variant_train_flops(
        d, g, seq_length=128, batch_size=128, max_predictions=20, convention=flops.PAPER
    ).per_step
    assert per_step * 1e6 == pytest.approx(PAPER_PRINTED["electra_small"], rel=0.01)
    bert = flops.variant_train_flops(
        d,
        g,
        seq_length=128,
        batch_size=128,
        max_predictions=20,
        objective="mlm",
        convention=flops.PAPER,
    ).per_step
    assert bert * 1.45e6 == pytest.approx(PAPER_PRINTED["bert_small"], rel=0.01)


def test_default_convention_is_three_forward_passes():
    d, g = small_configs()
    kwargs = dict(seq_length=128, batch_size=32, max_predictions=20)
    paper_no_lookup = flops.Convention(trained_multiplier=2.0, dense_embedding_lookup=False)
    three = flops.variant_train_flops(d, g, **kwargs).per_step
    two = flops.variant_train_flops(d, g, convention=paper_no_lookup, **kwargs).per_step
    assert three == pytest.approx(1.5 * two)


def test_variant_ordering():
    d, g = small_configs()
    kwargs = dict(seq_length=128, batch_size=32, max_predictions=20)

    def per_step(**k):
        return flops.variant_train_flops(d, g, **kwargs, **k).per_step

    electra, mlm = per_step(), per_step(objective="mlm")
    assert per_step(objective="electra_15") == electra
    assert per_step(uniform_generator=True) < mlm < electra
    assert per_step(objective="all_tokens_mlm") > per_step(objective="replace_mlm")
    assert per_step(objective="electric") > electra
    same = generator_config(d, 1.0, 1.0, False)
    shared_all = flops.variant_train_flops(d, same, embedding_sharing="all", **kwargs).per_step
    assert shared_all > electra


def test_two_stage_cumulative():
    d, _ = small_configs()
    g = generator_config(d, 1.0, 1.0, False)
    f = flops.variant_train_flops(
        d,
        g,
        seq_length=128,
        batch_size=32,
        max_predictions=20,
        generator_training="two_stage",
        two_stage_switch_step=100,
    )
    assert f.first_stage_per_step < f.per_step
    assert f.cumulative(100) == pytest.approx(100 * f.first_stage_per_step)
    assert f.cumulative(150) == pytest.approx(100 * f.first_stage_per_step + 50 * f.per_step)
    assert f.steps_for(f.cumulative(150)) == 150
    assert f.steps_for(f.cumulative(40)) == 40
