"""keras-hub presets both ways: `convert to-keras-hub` / `from-keras-hub`, load_encoder, fine-tuning.

Oracle: keras-hub itself (requirements-oracles.txt). Its `ElectraBackbone.from_preset` and
`ElectraTokenizer.from_preset` load what we write, and must reproduce our encoder's sequence
output and our tokenizer's ids on real Wikipedia text.
"""

import functools
import gzip
import json

import keras
import numpy as np
import pytest
from test_convert import cli
from test_load_encoder import STEPS, _fine_tuned_weights, _finetune_chunking
from test_run_finetuning import chunk_data  # noqa: F401  (a fixture)

import electra_tf
from electra_tf.convert import keras_hub as preset_format
from electra_tf.convert import native
from electra_tf.convert.__main__ import main as convert_main
from electra_tf.data import tokenization
from electra_tf.data.vocab import build_vocab, write_vocab
from electra_tf.model.config import ElectraConfig

# keras-hub's feed-forward uses the tanh GELU, ours the exact erf GELU (they differ by at most
# 4.7e-4 at any one activation). Measured on the encoders below (2 layers, H128, our random
# initialization, seed 1) over the 452 real-text tokens of this file: max |ours - keras-hub| is
# 9.7e-6 (projected) and 1.1e-5 (unprojected) with keras-hub's own tanh GELU, and 1.4e-6 /
# 1.2e-6 (float32 rounding alone) once its feed-forward is given the exact GELU. The tolerances
# sit 2-3x above those figures; a misplaced weight moves the outputs by far more (~1e-1).
# (On a tiny discriminator briefly pre-trained on Wikipedia the tanh GELU's effect was 3.3e-4.)
GELU_TOLERANCE = 3e-5
ROUNDING_TOLERANCE = 3e-6
SEQ = 64
# Projected embeddings (E < H, as ELECTRA-Small) and unprojected ones name keras-hub's
# pooler differently in model.weights.h5; both must load.
EMBEDDING_SIZES = {"projected": 64, "unprojected": None}


@pytest.fixture(scope="module")
def wiki_text(shared_data, tmp_path_factory):
    """(a corpus file of real Wikipedia paragraphs, other paragraphs of the same text)."""
    with gzip.open(
        shared_data / "pretrain_en_wikipedia" / "wiki_en_000.txt.gz", "rt", encoding="utf-8"
    ) as f:
        lines = [line for _, line in zip(range(420), f)]
    corpus = tmp_path_factory.mktemp("wiki") / "corpus.txt"
    corpus.write_text("".join(lines[:400]), encoding="utf-8")
    return corpus, [line.strip() for line in lines[400:] if line.strip()][:8]


@pytest.fixture(scope="module")
def encoders(wiki_text, tmp_path_factory):
    """Encoder directories (save_pretrained + vocab.txt) of tiny random encoders, by name."""
    root = tmp_path_factory.mktemp("encoders")
    vocab = str(root / "vocab.txt")
    write_vocab(build_vocab([str(wiki_text[0])], 1000, do_lower_case=True), vocab)
    dirs = {}
    for name, embedding_size in EMBEDDING_SIZES.items():
        config = ElectraConfig(
            vocab_size=len(tokenization.load_vocab(vocab)),
            hidden_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=512,
            embedding_size=embedding_size,
            max_position_embeddings=128,
        )
        keras.utils.set_random_seed(1)
        dirs[name] = root / name
        native.build_encoder(config).save_pretrained(str(dirs[name]))
        (dirs[name] / "vocab.txt").write_bytes((root / "vocab.txt").read_bytes())
    return dirs


@pytest.fixture(scope="module")
def presets(encoders, tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    for name, directory in encoders.items():
        cli("to-keras-hub", f"--encoder_dir={directory}", f"--output_dir={root / name}")
    return {name: root / name for name in encoders}


def _encoder_inputs(ids_per_text):
    """[CLS] ids [SEP], padded to SEQ, as our encoder's inputs."""
    ids = np.zeros((len(ids_per_text), SEQ), np.int32)
    for row, text_ids in enumerate(ids_per_text):
        text_ids = [2, *text_ids[: SEQ - 2], 3]
        ids[row, : len(text_ids)] = text_ids
    return {"input_ids": ids, "input_mask": (ids != 0).astype(np.int32), "segment_ids": 0 * ids}


def _keras_hub_output(backbone, x):
    inputs = {"token_ids": x["input_ids"], "padding_mask": x["input_mask"]}
    return backbone({**inputs, "segment_ids": x["segment_ids"]})["sequence_output"].numpy()


def _max_difference(a, b, mask):
    return float(np.max(np.abs(a - b)[mask.astype(bool)]))


def test_keras_hub_loads_our_preset_and_matches_our_encoder_on_real_text(
    encoders, presets, wiki_text
):
    import keras_hub

    sentences = wiki_text[1]
    for name, preset in presets.items():
        loaded = electra_tf.load_encoder(str(encoders[name]))
        ours_tokenizer = tokenization.FullTokenizer(loaded.vocab_file, do_lower_case=True)
        ids = ours_tokenizer.tokenize(sentences).to_list()
        theirs_tokenizer = keras_hub.models.ElectraTokenizer.from_preset(str(preset))
        assert [np.asarray(t).tolist() for t in theirs_tokenizer(sentences)] == ids, name
        assert sum(map(len, ids)) > 8 * 40  # real paragraphs, not a few words

        x = _encoder_inputs(ids)
        ours = loaded.encoder(x).numpy()
        backbone = keras_hub.models.ElectraBackbone.from_preset(str(preset))
        tanh_gelu = _max_difference(ours, _keras_hub_output(backbone, x), x["input_mask"])
        for layer in backbone.transformer_layers:
            layer._feedforward_intermediate_dense.activation = functools.partial(
                keras.activations.gelu, approximate=False
            )
        exact_gelu = _max_difference(ours, _keras_hub_output(backbone, x), x["input_mask"])
        assert exact_gelu < ROUNDING_TOLERANCE < tanh_gelu < GELU_TOLERANCE, (
            name,
            exact_gelu,
            tanh_gelu,
        )


def test_cased_preset_tokenizer_matches_ours(encoders, wiki_text, tmp_path):
    import keras_hub

    # A cased vocabulary keeps accented letters, so accent handling shows in the ids too. Cut
    # to the model's vocabulary size (special tokens come first).
    vocab, cased = str(tmp_path / "cased_vocab.txt"), tmp_path / "cased"
    size = len(tokenization.load_vocab(str(encoders["projected"] / "vocab.txt")))
    write_vocab(build_vocab([str(wiki_text[0])], 1000, do_lower_case=False)[:size], vocab)
    cli(
        "to-keras-hub",
        f"--encoder_dir={encoders['projected']}",
        f"--vocab_file={vocab}",
        f"--output_dir={cased}",
        "--no-do_lower_case",
    )
    assert electra_tf.load_encoder(str(cased)).do_lower_case is False
    ids = tokenization.FullTokenizer(vocab, do_lower_case=False).tokenize(wiki_text[1]).to_list()
    theirs = keras_hub.models.ElectraTokenizer.from_preset(str(cased))(wiki_text[1])
    assert [np.asarray(t).tolist() for t in theirs] == ids
    uncased = tokenization.FullTokenizer(vocab, do_lower_case=True, strip_accents=False)
    assert ids != uncased.tokenize(wiki_text[1]).to_list()  # the casing did change the ids


def test_round_trip_through_a_preset_is_exact(encoders, presets, tmp_path):
    import keras_hub

    source = native.read_encoder_dir(str(encoders["projected"]))
    preset = presets["projected"]
    cli("from-keras-hub", f"--preset_dir={preset}", f"--output_dir={tmp_path / 'back'}")
    back = native.read_encoder_dir(str(tmp_path / "back"))
    assert back.discriminator == source.discriminator
    assert (tmp_path / "back" / "vocab.txt").read_text() == (
        encoders["projected"] / "vocab.txt"
    ).read_text()

    # keras-hub's own save_to_preset output reads back too, bit for bit.
    resaved = tmp_path / "resaved"
    keras_hub.models.ElectraBackbone.from_preset(str(preset)).save_to_preset(str(resaved))
    keras_hub.models.ElectraTokenizer.from_preset(str(preset)).save_to_preset(str(resaved))
    loaded = electra_tf.load_encoder(str(resaved))
    assert loaded.format == "keras_hub" and loaded.do_lower_case is True
    assert loaded.vocab_file == f"{resaved}/assets/tokenizer/vocabulary.txt"
    from_keras_hub = native.read_values(
        native.encoder_variables(loaded.encoder, "electra", "electra")
    )

    assert set(back.weights) == set(source.weights) == set(from_keras_hub)
    for name, value in source.weights.items():
        assert np.array_equal(back.weights[name], value), name
        assert np.array_equal(from_keras_hub[name], value), name


def test_preset_errors_name_the_problem(encoders, presets, tmp_path, capsys):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("mine\n")
    assert (
        convert_main(
            ["to-keras-hub", f"--encoder_dir={encoders['projected']}", f"--output_dir={target}"]
        )
        == 2
    )
    assert "is not empty (notes.txt)" in capsys.readouterr().err
    assert (target / "notes.txt").read_text() == "mine\n"

    config = json.loads((presets["projected"] / "config.json").read_text())
    config["registered_name"] = "keras_hub>BertBackbone"
    broken = tmp_path / "bert"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps(config))
    (broken / "model.weights.h5").write_bytes(
        (presets["projected"] / "model.weights.h5").read_bytes()
    )
    assert (
        convert_main(["from-keras-hub", f"--preset_dir={broken}", f"--output_dir={tmp_path / 'o'}"])
        == 2
    )
    assert "'keras_hub>BertBackbone', not 'keras_hub>ElectraBackbone'" in capsys.readouterr().err

    # A preset of other sizes than its config says: every misfit variable is named.
    config = json.loads((presets["projected"] / "config.json").read_text())
    config["config"]["num_heads"] = 4
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(preset_format.ConversionError, match=r"query/kernel .*\(128, 4, 32\)"):
        electra_tf.load_encoder(str(broken))


def test_run_finetuning_starts_from_a_keras_hub_preset(presets, chunk_data, tmp_path):  # noqa: F811
    preset = presets["projected"]
    proc = _finetune_chunking(preset, chunk_data, tmp_path / "chunk")
    assert "(keras_hub format)" in proc.stderr, proc.stderr[-2000:]
    results = json.loads((tmp_path / "chunk" / "results.json").read_text())
    assert results["steps"] == STEPS and np.isfinite(results["scores"]["0"])
    settings = json.loads((tmp_path / "chunk" / "finetuning_settings.json").read_text())
    assert settings["do_lower_case"] is True
    assert settings["vocab_file"] == f"{preset}/assets/tokenizer/vocabulary.txt"
    tuned = _fine_tuned_weights(tmp_path / "chunk")
    # A few Adam steps at lr 1e-5 move each weight by ~1e-4 at most (the weights of another
    # random start would differ by ~0.02): fine-tuning began at the preset's weights.
    start = preset_format.read(str(preset)).weights
    moved = max(float(np.max(np.abs(tuned[k] - v))) for k, v in start.items())
    assert 0 < moved < 5e-4, moved
