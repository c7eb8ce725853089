"""Checkpoint conversion against independent oracles (no network).

Oracles: Hugging Face transformers on PyTorch CPU (requirements-oracles.txt),
HF's own TF1 loader `load_tf_weights_in_electra`, and tf-models-official's
BertEncoder built with tf_keras.
"""

import gzip
import itertools
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("USE_TF", "0")  # transformers: torch models only

import tensorflow as tf  # noqa: E402

import electra_tf  # noqa: E402
from electra_tf.convert import layout, native, original  # noqa: E402
from electra_tf.convert.__main__ import main as convert_main  # noqa: E402
from electra_tf.convert.report import ConversionError  # noqa: E402
from electra_tf.data import tokenization  # noqa: E402
from electra_tf.model.config import ElectraConfig  # noqa: E402
from electra_tf.model.encoder import ElectraEncoder  # noqa: E402

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATOL = 1e-4
VOCAB = 120


def oracles():
    try:
        import torch
        import transformers
        from transformers.models.electra import modeling_electra

        modeling_electra.load_tf_weights_in_electra  # noqa: B018
    except (ImportError, AttributeError) as e:
        pytest.fail(
            f"The HF/PyTorch oracles are missing ({e}). Install the test-only pins: "
            "`.venv/bin/pip install -r requirements-oracles.txt`"
        )
    return torch, transformers


def cli(*args):
    code = convert_main([str(a) for a in args])
    assert code == 0, f"convert {args[0]} failed"


def write_vocab(path, size=VOCAB):
    tokens = list(tokenization.SPECIAL_TOKENS) + [f"tok{i}" for i in range(size - 5)]
    path.write_text("\n".join(tokens) + "\n")
    return str(path)


def randomize(torch, model, seed):
    """Every parameter random (LayerNorm gains near 1), so nothing is trivially zero/one."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen) * 0.05
            p.copy_(1.0 + noise if "LayerNorm.weight" in name else noise)
    return model.eval()


def inputs():
    ids = np.array(
        [[2, 17, 45, 9, 88, 3, 60, 61, 3, 0, 0, 0], [2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 3]],
        np.int32,
    )
    mask = (ids != 0).astype(np.int32)
    mask[1, -1] = 1
    segments = np.array([[0] * 6 + [1] * 3 + [0] * 3, [0] * 12], np.int32)
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}


def hf_forward(torch, model, x):
    with torch.no_grad():
        return model(
            input_ids=torch.tensor(x["input_ids"], dtype=torch.long),
            attention_mask=torch.tensor(x["input_mask"], dtype=torch.long),
            token_type_ids=torch.tensor(x["segment_ids"], dtype=torch.long),
            output_hidden_states=True,
        )


DISC = dict(
    vocab_size=VOCAB,
    embedding_size=32,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=128,
    max_position_embeddings=64,
    type_vocab_size=2,
)
# The generator shares the discriminator's embeddings (E=32) and projects to its
# own width; heads/FFN follow run_pretraining's rules (64 // 64 = 1 head, 4 x 64).
GEN = dict(DISC, hidden_size=64, num_hidden_layers=1, num_attention_heads=1, intermediate_size=256)


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    torch, transformers = oracles()
    from transformers import (
        ElectraConfig as HFConfig,
    )
    from transformers import (
        ElectraForMaskedLM,
        ElectraForPreTraining,
        ElectraForTokenClassification,
    )

    root = tmp_path_factory.mktemp("hf")
    disc = randomize(torch, ElectraForPreTraining(HFConfig(**DISC)), 1)
    gen = randomize(torch, ElectraForMaskedLM(HFConfig(**GEN)), 2)
    # Released generators carry a copy of the discriminator's embedding block.
    gen.electra.embeddings.load_state_dict(disc.electra.embeddings.state_dict())
    tagger = randomize(torch, ElectraForTokenClassification(HFConfig(**DISC, num_labels=5)), 3)
    vocab = write_vocab(root / "vocab.txt")
    dirs = {}
    for name, model in (("disc", disc), ("gen", gen), ("tagger", tagger)):
        dirs[name] = root / name
        model.save_pretrained(dirs[name], safe_serialization=True)
        (dirs[name] / "vocab.txt").write_text(open(vocab).read())
        assert (dirs[name] / "model.safetensors").exists()
    return {
        "torch": torch,
        "disc": disc,
        "gen": gen,
        "tagger": tagger,
        "dirs": dirs,
        "vocab": vocab,
        "root": root,
    }


@pytest.fixture(scope="module")
def converted_pretraining(hf_models):
    model_dir = hf_models["root"] / "pretraining"
    cli(
        "from-hf",
        "--hf_dir",
        hf_models["dirs"]["disc"],
        "--generator_hf_dir",
        hf_models["dirs"]["gen"],
        "--model_dir",
        model_dir,
        "--vocab_file",
        hf_models["vocab"],
        "--max_seq_length",
        16,
    )
    return model_dir


def test_from_hf_pretraining_matches_hf_outputs(hf_models, converted_pretraining):
    torch = hf_models["torch"]
    model, _, settings = native.load_pretraining(str(converted_pretraining))
    assert not settings.untied_generator_embeddings
    assert model.generator.embeddings is model.discriminator.embeddings
    x = inputs()
    theirs = hf_forward(torch, hf_models["disc"], x)
    hidden = model.discriminator(x)
    np.testing.assert_allclose(hidden.numpy(), theirs.hidden_states[-1].numpy(), atol=ATOL)
    np.testing.assert_allclose(
        model.discriminator_predictions(hidden).numpy(), theirs.logits.numpy(), atol=ATOL
    )
    theirs = hf_forward(torch, hf_models["gen"], x)
    gen_hidden = model.generator(x)
    np.testing.assert_allclose(gen_hidden.numpy(), theirs.hidden_states[-1].numpy(), atol=ATOL)
    np.testing.assert_allclose(
        model.generator_predictions(gen_hidden).numpy(), theirs.logits.numpy(), atol=ATOL
    )


def test_from_hf_encoder_dir_matches_and_round_trips(hf_models, tmp_path):
    torch = hf_models["torch"]
    cli("from-hf", "--hf_dir", hf_models["dirs"]["disc"], "--output_dir", tmp_path / "enc")
    assert (tmp_path / "enc" / "vocab.txt").exists()
    encoder = ElectraEncoder.from_pretrained(str(tmp_path / "enc"))
    x = inputs()
    theirs = hf_forward(torch, hf_models["disc"], x)
    for ours, ref in zip(encoder(x, return_all_layers=True), theirs.hidden_states[1:]):
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=ATOL)
    # Back to HF: an ElectraModel whose weights equal the original's encoder.
    cli("to-hf", "--encoder_dir", tmp_path / "enc", "--output_dir", tmp_path / "hf_back")
    from safetensors.numpy import load_file

    back = load_file(str(tmp_path / "hf_back" / "model.safetensors"))
    reference = {
        k[len("electra.") :]: v.numpy()
        for k, v in hf_models["disc"].state_dict().items()
        if k.startswith("electra.")
    }
    assert set(back) == set(reference)
    for key, value in reference.items():
        np.testing.assert_array_equal(back[key], value, err_msg=key)
    # And an unprefixed ElectraModel directory reads back to the same weights.
    from electra_tf.convert import hf

    again = hf.read(str(tmp_path / "hf_back")).weights
    ours = native.read_encoder_dir(str(tmp_path / "enc")).weights
    assert set(again) == set(ours)
    for key, value in ours.items():
        np.testing.assert_array_equal(again[key], value, err_msg=key)


def test_to_hf_pretraining_round_trip_is_exact(hf_models, converted_pretraining, tmp_path):
    from transformers import ElectraForMaskedLM, ElectraForPreTraining

    cli("to-hf", "--model_dir", converted_pretraining, "--output_dir", tmp_path)
    for name, cls in (("disc", ElectraForPreTraining), ("gen", ElectraForMaskedLM)):
        folder = tmp_path / ("discriminator" if name == "disc" else "generator")
        reloaded, info = cls.from_pretrained(folder, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"], info
        reference = hf_models[name].state_dict()
        for key, value in reloaded.state_dict().items():
            np.testing.assert_array_equal(value.numpy(), reference[key].numpy(), err_msg=key)
        assert (folder / "vocab.txt").exists()


def test_token_classifier_from_hf_and_back(hf_models, tmp_path):
    torch = hf_models["torch"]
    cli("from-hf", "--hf_dir", hf_models["dirs"]["tagger"], "--output_dir", tmp_path / "tagger")
    model, _ = native.load_token_classifier(str(tmp_path / "tagger"))
    x = inputs()
    theirs = hf_forward(torch, hf_models["tagger"], x)
    np.testing.assert_allclose(model(x).numpy(), theirs.logits.numpy(), atol=ATOL)
    # The fine-tuning loader reads the same directory's discriminator.
    ElectraEncoder.from_pretrained(str(tmp_path / "tagger"))
    cli("to-hf", "--token_classifier_dir", tmp_path / "tagger", "--output_dir", tmp_path / "back")
    from transformers import ElectraForTokenClassification

    reloaded = ElectraForTokenClassification.from_pretrained(tmp_path / "back")
    reference = hf_models["tagger"].state_dict()
    for key, value in reloaded.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), reference[key].numpy(), err_msg=key)


def original_names(disc, gen, heads=True):
    """Names google-research/electra creates, spelled out from model/modeling.py and
    run_pretraining.py (independently of electra_tf.convert.layout)."""
    names = {}

    def encoder(scope, c, with_embeddings, table_scope):
        e = c["embedding_size"]
        if with_embeddings:
            for n, rows in (
                ("word_embeddings", c["vocab_size"]),
                ("token_type_embeddings", c["type_vocab_size"]),
                ("position_embeddings", c["max_position_embeddings"]),
            ):
                names[f"{table_scope}/embeddings/{n}"] = [rows, e]
            names[f"{table_scope}/embeddings/LayerNorm/gamma"] = [e]
            names[f"{table_scope}/embeddings/LayerNorm/beta"] = [e]
        h, i = c["hidden_size"], c["intermediate_size"]
        if e != h:
            names[f"{scope}/embeddings_project/kernel"] = [e, h]
            names[f"{scope}/embeddings_project/bias"] = [h]
        for n in range(c["num_hidden_layers"]):
            p = f"{scope}/encoder/layer_{n}"
            for d, shape in (
                ("attention/self/query", [h, h]),
                ("attention/self/key", [h, h]),
                ("attention/self/value", [h, h]),
                ("attention/output/dense", [h, h]),
                ("intermediate/dense", [h, i]),
                ("output/dense", [i, h]),
            ):
                names[f"{p}/{d}/kernel"] = shape
                names[f"{p}/{d}/bias"] = shape[-1:]
            for ln in ("attention/output/LayerNorm", "output/LayerNorm"):
                names[f"{p}/{ln}/gamma"] = [h]
                names[f"{p}/{ln}/beta"] = [h]

    encoder("electra", disc, True, "electra")
    encoder("generator", gen, False, "electra")
    if heads:
        e = disc["embedding_size"]
        names["generator_predictions/dense/kernel"] = [gen["hidden_size"], e]
        names["generator_predictions/dense/bias"] = [e]
        names["generator_predictions/LayerNorm/gamma"] = [e]
        names["generator_predictions/LayerNorm/beta"] = [e]
        names["generator_predictions/output_bias"] = [disc["vocab_size"]]
        h = disc["hidden_size"]
        names["discriminator_predictions/dense/kernel"] = [h, h]
        names["discriminator_predictions/dense/bias"] = [h]
        names["discriminator_predictions/dense_1/kernel"] = [h, 1]
        names["discriminator_predictions/dense_1/bias"] = [1]
    return names


def test_to_original_loads_in_hf_tf1_loader_and_reads_back_exactly(
    hf_models, converted_pretraining, tmp_path
):
    torch = hf_models["torch"]
    from transformers import ElectraConfig as HFConfig
    from transformers import ElectraForMaskedLM, ElectraForPreTraining
    from transformers.models.electra.modeling_electra import load_tf_weights_in_electra

    prefix = str(tmp_path / "orig" / "model.ckpt")
    cli("to-original", "--model_dir", converted_pretraining, "--output", prefix)
    listed = dict(tf.train.list_variables(prefix))
    assert listed == original_names(DISC, GEN)

    x = inputs()
    for name, cls, config, role in (
        ("disc", ElectraForPreTraining, DISC, "discriminator"),
        ("gen", ElectraForMaskedLM, GEN, "generator"),
    ):
        fresh = cls(HFConfig(**config)).eval()
        load_tf_weights_in_electra(fresh, fresh.config, prefix, discriminator_or_generator=role)
        np.testing.assert_allclose(
            hf_forward(torch, fresh, x).logits.numpy(),
            hf_forward(torch, hf_models[name], x).logits.numpy(),
            atol=ATOL,
        )

    # from-original reads it back bit-exact, into a pre-training dir.
    ours = native.read_pretraining_dir(str(converted_pretraining), include_optimizer=False)
    back = original.read(prefix, num_attention_heads=2)
    assert back.discriminator == ours.discriminator and back.generator == ours.generator
    assert set(back.weights) == set(ours.weights)
    for key, value in ours.weights.items():
        np.testing.assert_array_equal(back.weights[key], value, err_msg=key)
    cli(
        "from-original",
        "--checkpoint",
        prefix,
        "--model_dir",
        tmp_path / "md",
        "--vocab_file",
        hf_models["vocab"],
        "--num_attention_heads",
        2,
        "--max_seq_length",
        16,
    )
    again = native.read_pretraining_dir(str(tmp_path / "md"), include_optimizer=False)
    for key, value in ours.weights.items():
        np.testing.assert_array_equal(again.weights[key], value, err_msg=key)


def test_from_tf_models_bert_encoder_matches(tmp_path):
    import tf_keras
    from official.nlp.modeling import networks

    encoder = networks.BertEncoder(
        vocab_size=VOCAB,
        hidden_size=64,
        num_layers=2,
        num_attention_heads=2,
        max_sequence_length=64,
        type_vocab_size=2,
        inner_dim=128,
        embedding_width=32,
        inner_activation=lambda t: tf_keras.activations.gelu(t, approximate=False),
        dict_outputs=True,
    )
    x = inputs()
    theirs_in = {
        "input_word_ids": x["input_ids"],
        "input_mask": x["input_mask"],
        "input_type_ids": x["segment_ids"],
    }
    encoder(theirs_in)
    rng = np.random.default_rng(4)
    for v in encoder.variables:
        noise = rng.normal(0, 0.05, v.shape).astype(np.float32)
        v.assign(1.0 + noise if v.name.endswith("gamma:0") or "/gamma" in v.name else noise)
    theirs = encoder(theirs_in)["sequence_output"].numpy()
    tf.train.Checkpoint(encoder=encoder).write(str(tmp_path / "bert" / "ckpt"))
    cli(
        "from-tf-models",
        "--checkpoint",
        tmp_path / "bert" / "ckpt",
        "--output_dir",
        tmp_path / "enc",
        "--num_attention_heads",
        2,
    )
    ours = ElectraEncoder.from_pretrained(str(tmp_path / "enc"))
    assert ours.config.embedding_dim == 32 and ours.config.num_attention_heads == 2
    np.testing.assert_allclose(ours(x).numpy(), theirs, atol=ATOL)
    # load_encoder finds the checkpoint in its directory (no `checkpoint` state file).
    loaded = electra_tf.load_encoder(str(tmp_path / "bert"))
    assert loaded.format == "tf_models" and loaded.source.checkpoint == f"{tmp_path}/bert/ckpt"
    np.testing.assert_allclose(loaded.encoder(x).numpy(), theirs, atol=ATOL)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_weights_are_refused_and_never_run(tmp_path, monkeypatch):
    oracles()
    import pickle

    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"model_type": "electra", **DISC, "architectures": ["ElectraModel"]})
    )
    marker = tmp_path / "CODE_RAN"
    with open(folder / "pytorch_model.bin", "wb") as f:
        pickle.dump({"x": _RunsCode(str(marker))}, f)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "electra_tf.convert",
            "from-hf",
            "--hf_dir",
            str(folder),
            "--output_dir",
            str(tmp_path / "out"),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Refused to load" in result.stderr and "weights_only" in result.stderr
    assert not marker.exists()
    assert not (tmp_path / "out").exists()
    # A genuine PyTorch checkpoint still loads (through torch.load(weights_only=True)).
    torch = oracles()[0]
    from transformers import ElectraModel

    from electra_tf.convert import hf

    genuine = tmp_path / "genuine"
    randomize(
        torch, ElectraModel(__import__("transformers").ElectraConfig(**DISC)), 5
    ).save_pretrained(genuine, safe_serialization=False)
    assert (genuine / "pytorch_model.bin").exists()
    assert hf.read(str(genuine)).discriminator.hidden_size == 64
    # Without torch: a clear message, and still no unpickling.
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ConversionError, match="needs torch.*never\\s+unpickles"):
        hf.read(str(folder))
    assert not marker.exists()


def _random_bundle(disc, gen, seed=0):
    bundle = layout.Bundle(
        weights={}, discriminator=disc, generator=gen, has_discriminator_head=True
    )
    rng = np.random.default_rng(seed)
    bundle.weights = {
        k: rng.normal(0, 0.05, s).astype(np.float32)
        for k, s in layout.expected_shapes(bundle).items()
    }
    return bundle


def test_generator_size_mismatch_is_one_readable_report(tmp_path, capsys):
    disc = ElectraConfig(
        vocab_size=VOCAB,
        hidden_size=256,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=512,
        embedding_size=32,
        max_position_embeddings=64,
    )
    wide_generator = disc.replace(embedding_size=32)  # full width: 256
    prefix = original.write(_random_bundle(disc, wide_generator), str(tmp_path / "model.ckpt"))
    expected_gen = disc.replace(hidden_size=64, num_attention_heads=1, intermediate_size=256)
    (tmp_path / "gen.json").write_text(json.dumps(expected_gen.to_dict()))
    small_vocab = write_vocab(tmp_path / "vocab.txt", size=100)
    code = convert_main(
        [
            "from-original",
            "--checkpoint",
            prefix,
            "--generator_config",
            str(tmp_path / "gen.json"),
            "--output_dir",
            str(tmp_path / "out"),
            "--vocab_file",
            small_vocab,
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("Cannot convert") == 1
    rows = [line for line in err.splitlines() if line.startswith("  generator/")]
    assert len(rows) >= 10
    query = [
        r for r in rows if r.split()[0] == "generator/encoder/layer_0/attention/self/query/kernel"
    ]
    assert query and "(64, 64)" in query[0] and "(256, 256)" in query[0]
    assert re.search(r"vocab_size.*\b100\b.*\b120\b", err)
    assert "generator_hidden_size" in err
    assert not (tmp_path / "out").exists()


def test_missing_variables_are_listed_together(tmp_path):
    disc = ElectraConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=1,
        intermediate_size=128,
        embedding_size=32,
        max_position_embeddings=64,
    )
    gen = disc.replace(num_hidden_layers=1, intermediate_size=256)
    bundle = _random_bundle(disc, gen)
    for name in (
        "electra/encoder/layer_1/output/dense/kernel",
        "generator_predictions/output_bias",
        "discriminator_predictions/dense_1/bias",
    ):
        del bundle.weights[name]
    prefix = str(tmp_path / "model.ckpt")
    tf.raw_ops.SaveV2(
        prefix=prefix,
        tensor_names=sorted(bundle.weights),
        shape_and_slices=[""] * len(bundle.weights),
        tensors=[bundle.weights[k] for k in sorted(bundle.weights)],
    )
    with pytest.raises(ConversionError) as error:
        original.read(prefix, expected_discriminator=disc, expected_generator=gen)
    message = str(error.value)
    assert len([line for line in message.splitlines() if line.endswith("missing")]) == 3
    assert "electra/encoder/layer_1/output/dense/kernel  (128, 64)" in message


# ---- released-format continue: ours -> original (with slots) -> ours -> resume ----

ARCH_FLAGS = [
    "--model_size=small",
    '--model_hparam_overrides={"hidden_size": 64, "num_hidden_layers": 2, '
    '"intermediate_size": 128}',
    "--embedding_size=32",
    "--max_seq_length=32",
    "--generator_hidden_size=0.5",
    "--generator_layers=0.5",
]


def _run_pretraining(model_dir, vocab, records, steps, extra=()):
    cmd = [
        sys.executable,
        "-m",
        "electra_tf.run_pretraining",
        f"--model_dir={model_dir}",
        f"--vocab_file={vocab}",
        f"--pretrain_tfrecords={records}",
        "--train_batch_size=8",
        "--num_train_steps=200",
        "--num_warmup_steps=0",
        "--learning_rate=2e-3",
        "--iterations_per_loop=10",
        "--save_checkpoints_steps=10",
        "--use_xla=false",
        f"--max_train_steps_this_run={steps}",
        "--seed=3",
        *extra,
    ]
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    losses = {
        int(m.group(1)): float(m.group(2))
        for m in re.finditer(r"step (\d+)/\d+ .*?\| loss ([\d.]+)", result.stderr)
    }
    return result.stderr, losses


@pytest.fixture(scope="module")
def tiny_corpus(shared_data, tmp_path_factory):
    from electra_tf.data import pretraining_records
    from electra_tf.data import vocab as vocab_lib

    root = tmp_path_factory.mktemp("continue_data")
    corpus = root / "corpus"
    corpus.mkdir()
    with gzip.open(
        shared_data / "pretrain_en_wikipedia" / "wiki_en_000.txt.gz", "rt", encoding="utf-8"
    ) as f:
        (corpus / "wiki.txt").write_text("".join(itertools.islice(f, 400)), encoding="utf-8")
    vocab = str(root / "vocab.txt")
    vocab_lib.write_vocab(
        vocab_lib.build_vocab([str(corpus / "wiki.txt")], vocab_size=600, do_lower_case=True), vocab
    )
    records = root / "records"
    pretraining_records.build_pretraining_dataset(
        pretraining_records.corpus_files(str(corpus)),
        vocab,
        str(records),
        max_seq_length=32,
        num_out_files=2,
        num_processes=1,
        do_lower_case=True,
        seed=1,
    )
    return vocab, str(records / f"{pretraining_records.SHARD_PREFIX}*")


def _eval_loss(model, batch):
    from electra_tf.training import stateless_random

    key = stateless_random.key_from_seed(tf.constant([11, 12], tf.int64))
    denominators = model.loss_denominators(batch)
    index = tf.range(tf.shape(batch["input_ids"])[0], dtype=tf.int32)
    loss, _ = model.compute_loss_and_stats(batch, denominators, key, index, training=False)
    return float(loss)


def test_released_format_checkpoint_resumes_without_a_jump(tiny_corpus, tmp_path):
    from electra_tf.data import pretraining_input

    vocab, records = tiny_corpus
    run_a = tmp_path / "a"
    _, losses_a = _run_pretraining(run_a, vocab, records, 30, ARCH_FLAGS)
    assert sorted(losses_a) == [10, 20, 30]
    prefix = str(tmp_path / "released" / "model.ckpt")
    cli("to-original", "--model_dir", run_a, "--output", prefix, "--include_optimizer")
    listed = dict(tf.train.list_variables(prefix))
    assert listed["global_step"] == []
    assert "electra/encoder/layer_1/output/dense/kernel/adam_m" in listed
    assert "generator_predictions/output_bias/adam_v" in listed
    assert int(tf.train.load_variable(prefix, "global_step")) == 30

    run_b = tmp_path / "b"
    cli(
        "from-original",
        "--checkpoint",
        prefix,
        "--model_dir",
        run_b,
        "--vocab_file",
        vocab,
        "--include_optimizer",
        "--max_seq_length",
        32,
        "--seed",
        3,
    )
    assert "--generator_hidden_size=0.5" in (run_b / "converted.flags").read_text()

    # Same weights, slots and step: the same loss on the same batch, exactly.
    model_a, opt_a, _ = native.load_pretraining(str(run_a))
    model_b, opt_b, _ = native.load_pretraining(str(run_b))
    assert int(opt_b.iterations.numpy()) == 30
    for m_a, m_b, v_a, v_b in zip(opt_a.m, opt_b.m, opt_a.v, opt_b.v):
        np.testing.assert_array_equal(m_a.numpy(), m_b.numpy())
        np.testing.assert_array_equal(v_a.numpy(), v_b.numpy())
    batch = next(iter(pretraining_input.pretraining_dataset(records, 32, 16, is_training=False)))
    assert _eval_loss(model_b, batch) == pytest.approx(_eval_loss(model_a, batch), abs=1e-5)

    log_b, losses_b = _run_pretraining(
        run_b, vocab, records, 20, [f"--flagfile={run_b}/converted.flags"]
    )
    print("losses before conversion", losses_a, "after", losses_b)
    assert "Resumed from" in log_b and "at step 30" in log_b
    assert sorted(losses_b) == [40, 50]
    # No jump: the resumed run continues from the converted model's loss level
    # (a fresh optimizer state or a wrong mapping sends it back up).
    assert losses_b[40] < losses_a[10]
    assert abs(losses_b[40] - losses_a[30]) < 0.2 * losses_a[30], (losses_a, losses_b)
