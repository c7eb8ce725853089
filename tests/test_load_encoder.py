"""electra_tf.load_encoder and run_finetuning --init_checkpoint on every checkpoint format.

Oracle: Hugging Face transformers on PyTorch CPU. A tiny random HF ELECTRA
is saved with save_pretrained; the original-format (TF1) checkpoints are
written from it by this project's converter, whose output test_convert checks
against HF's own TF1 loader. Each format must load to HF's hidden states.
"""

import json
import os
import shutil

import numpy as np
import pytest

os.environ.setdefault("USE_TF", "0")  # transformers: torch models only

import tensorflow as tf  # noqa: E402
from test_convert import (
    ATOL,
    DISC,
    cli,
    converted_pretraining,  # noqa: F401  (a fixture)
    hf_forward,  # noqa: E402,F401
    hf_models,  # noqa: F401  (a fixture)
    inputs,
    oracles,
    randomize,
)
from test_run_finetuning import _check, _run, chunk_data  # noqa: E402,F401

import electra_tf  # noqa: E402
from electra_tf.convert import hf, native, original  # noqa: E402
from electra_tf.convert.load import UnknownCheckpointFormat  # noqa: E402
from electra_tf.convert.report import ConversionError  # noqa: E402


def assert_matches_hf(loaded, torch, hf_model):
    x = inputs()
    theirs = hf_forward(torch, hf_model, x).hidden_states[1:]
    ours = loaded.encoder(x, return_all_layers=True)
    assert len(ours) == len(theirs)
    for layer, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=ATOL, err_msg=f"layer {layer}")


def write_original(bundle, prefix, vocab, state_file):
    """An original-format checkpoint as the release ships it: <name>.index/.data + vocab.txt."""
    original.write(bundle, prefix)
    folder = os.path.dirname(prefix)
    shutil.copyfile(vocab, os.path.join(folder, "vocab.txt"))
    if state_file:
        write_state_file(prefix)
    return folder


def write_state_file(prefix):
    """The `checkpoint` file TF1's Saver writes beside its checkpoints (relative names)."""
    name = os.path.basename(prefix)
    with open(os.path.join(os.path.dirname(prefix), "checkpoint"), "w") as f:
        f.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')


def test_hf_directories_load_to_hf_hidden_states(hf_models):
    torch, dirs = hf_models["torch"], hf_models["dirs"]
    # ElectraForPreTraining, ElectraForMaskedLM (its own encoder) and
    # ElectraForTokenClassification: the encoder is read and the heads left out.
    for name in ("disc", "gen", "tagger"):
        loaded = electra_tf.load_encoder(str(dirs[name]))
        assert loaded.format == "hf"
        assert loaded.vocab_file == f"{dirs[name]}/vocab.txt"
        assert loaded.do_lower_case is None  # no tokenizer_config.json here
        assert loaded.config.num_attention_heads == hf_models[name].config.num_attention_heads
        assert_matches_hf(loaded, torch, hf_models[name])
    with pytest.raises(ConversionError, match=r"num_attention_heads=3 but .*disc has 2 heads"):
        electra_tf.load_encoder(str(dirs["disc"]), num_attention_heads=3)


def test_original_checkpoints_load_to_hf_hidden_states(hf_models, converted_pretraining, tmp_path):
    torch, disc_dir = hf_models["torch"], str(hf_models["dirs"]["disc"])
    # Discriminator only, no `checkpoint` state file: found by its single .index.
    folder = write_original(
        hf.read(disc_dir),
        str(tmp_path / "released" / "electra_tiny"),
        hf_models["vocab"],
        state_file=False,
    )
    loaded = electra_tf.load_encoder(folder, num_attention_heads=DISC["num_attention_heads"])
    assert loaded.format == "original"
    assert loaded.source.checkpoint == f"{folder}/electra_tiny"
    assert loaded.vocab_file == f"{folder}/vocab.txt" and loaded.do_lower_case is None
    assert_matches_hf(loaded, torch, hf_models["disc"])
    # Without a head count the original's rule applies: hidden 64 // 64 = 1 head.
    assert electra_tf.load_encoder(folder).config.num_attention_heads == 1
    # A config.json beside the checkpoint (HF's here) supplies it.
    shutil.copyfile(f"{disc_dir}/config.json", f"{folder}/config.json")
    assert_matches_hf(electra_tf.load_encoder(folder), torch, hf_models["disc"])

    # A full pre-training checkpoint (generator, heads, Adam slots, global_step)
    # with a `checkpoint` state file, passed as a directory and as a prefix.
    prefix = str(tmp_path / "pretraining" / "model.ckpt-3")
    cli(
        "to-original",
        "--model_dir",
        converted_pretraining,
        "--output",
        prefix,
        "--include_optimizer",
    )
    names = dict(tf.train.list_variables(prefix))
    assert "generator/encoder/layer_0/attention/self/query/kernel" in names
    assert "electra/encoder/layer_0/attention/self/query/kernel/adam_m" in names
    write_state_file(prefix)
    for path in (os.path.dirname(prefix), prefix):
        loaded = electra_tf.load_encoder(path, num_attention_heads=DISC["num_attention_heads"])
        assert loaded.format == "original" and loaded.source.checkpoint == prefix
        assert_matches_hf(loaded, torch, hf_models["disc"])


def test_our_directory_and_tf_models_detection(hf_models, tmp_path):
    torch, disc_dir = hf_models["torch"], str(hf_models["dirs"]["disc"])
    ours = tmp_path / "ours"
    native.write_encoder_dir(hf.read(disc_dir), str(ours), hf_models["vocab"])
    loaded = electra_tf.load_encoder(str(ours))
    assert loaded.format == "electra_tf" and loaded.vocab_file == f"{ours}/vocab.txt"
    assert_matches_hf(loaded, torch, hf_models["disc"])
    # The HF tokenizer's own files set vocab_file and do_lower_case.
    from transformers import ElectraTokenizer

    cased = tmp_path / "hf_cased"
    shutil.copytree(disc_dir, cased)
    ElectraTokenizer(hf_models["vocab"], do_lower_case=False).save_pretrained(cased)
    loaded = electra_tf.load_encoder(str(cased))
    assert loaded.do_lower_case is False and loaded.vocab_file == f"{cased}/vocab.txt"


def test_malformed_checkpoints_name_the_file_and_the_fix(
    hf_models, converted_pretraining, tmp_path
):
    disc_dir = hf_models["dirs"]["disc"]

    def broken(name, drop=(), damage=None):
        folder = tmp_path / name
        shutil.copytree(disc_dir, folder)
        for f in drop:
            (folder / f).unlink()
        if damage:
            data = (folder / damage).read_bytes()
            (folder / damage).write_bytes(data[: len(data) // 3])
        return str(folder)

    with pytest.raises(
        ConversionError,
        match=r"no_config/config\.json is missing: "
        r"model\.safetensors needs .*save_pretrained",
    ):
        electra_tf.load_encoder(broken("no_config", drop=["config.json"]))
    with pytest.raises(
        ConversionError,
        match=r"cut/model\.safetensors is not a readable "
        r"safetensors file .*download it again",
    ):
        electra_tf.load_encoder(broken("cut", damage="model.safetensors"))
    bad_json = broken("bad_json")
    with open(f"{bad_json}/config.json", "w") as f:
        f.write("{not json")
    with pytest.raises(ConversionError, match=r"bad_json/config\.json is not valid JSON"):
        electra_tf.load_encoder(bad_json)
    bert = broken("bert")
    config = json.loads(open(f"{bert}/config.json").read())
    with open(f"{bert}/config.json", "w") as f:
        json.dump({**config, "model_type": "bert"}, f)
    with pytest.raises(ConversionError, match="HF 'bert' model, not ELECTRA"):
        electra_tf.load_encoder(bert)
    short_vocab = broken("short_vocab")
    with open(f"{short_vocab}/vocab.txt", "w") as f:
        f.write("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n")
    with pytest.raises(
        ConversionError,
        match=r"short_vocab/vocab\.txt has 5 tokens but the "
        r"model .* vocabulary of 120",
    ):
        electra_tf.load_encoder(short_vocab)

    ours = tmp_path / "ours"
    native.write_encoder_dir(hf.read(str(disc_dir)), str(ours))
    (ours / "config.json").unlink()
    with pytest.raises(ConversionError, match=r"ours/config\.json is missing: .*save_pretrained"):
        electra_tf.load_encoder(str(ours))
    damaged = tmp_path / "damaged"
    native.write_encoder_dir(hf.read(str(disc_dir)), str(damaged))
    data_file = next(damaged.glob("encoder.ckpt.data-*"))
    data_file.write_bytes(data_file.read_bytes()[:100])
    with pytest.raises(ConversionError, match=r"Cannot restore .*damaged/encoder\.ckpt"):
        electra_tf.load_encoder(str(damaged))

    prefix = tmp_path / "orig" / "model.ckpt"
    original.write(hf.read(str(disc_dir)), str(prefix))
    index = prefix.parent / "model.ckpt.index"
    index.write_bytes(b"garbage" * 10)
    with pytest.raises(
        ConversionError,
        match=r"Cannot read the TF checkpoint .*orig/model\.ckpt"
        r" .*download or copy it again",
    ):
        electra_tf.load_encoder(str(prefix.parent))

    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "notes.txt").write_text("weights are elsewhere\n")
    with pytest.raises(UnknownCheckpointFormat) as error:
        electra_tf.load_encoder(str(unknown))
    message = str(error.value)
    assert "notes.txt" in message
    for looked_for in (
        "encoder.ckpt.index",
        "model.safetensors",
        "pytorch_model.bin",
        "electra/encoder/layer_0/attention/self/query/kernel",
        "_transformer_layers/0",
        "variables/variables.index",
    ):
        assert looked_for in message, looked_for
    with pytest.raises(UnknownCheckpointFormat, match="does not exist"):
        electra_tf.load_encoder(str(tmp_path / "nowhere"))
    with pytest.raises(
        UnknownCheckpointFormat, match="run_pretraining --model_dir.*/discriminator"
    ):
        electra_tf.load_encoder(str(converted_pretraining))


# ---- run_finetuning --init_checkpoint=<HF dir> / <original dir> ----

SEQ = 32
LEARNING_RATE, STEPS = 1e-5, 4


@pytest.fixture(scope="module")
def tagging_checkpoints(chunk_data, tmp_path_factory):
    """A random HF ELECTRA over a vocabulary learned from the CoNLL-2000 slice, saved by
    transformers (model + ElectraTokenizer), and the same weights as a released-layout
    original checkpoint (heads follow the original's hidden // 64 rule)."""
    torch, _ = oracles()
    from transformers import ElectraConfig as HFConfig
    from transformers import ElectraForPreTraining, ElectraTokenizer

    from electra_tf.data.vocab import build_vocab, write_vocab

    root = tmp_path_factory.mktemp("tagging_checkpoints")
    vocab = str(root / "vocab.txt")
    write_vocab(build_vocab([str(chunk_data / "train.txt")], 600, do_lower_case=True), vocab)
    size = sum(1 for _ in open(vocab))
    config = HFConfig(**dict(DISC, vocab_size=size, num_attention_heads=1))
    hf_dir = root / "hf"
    randomize(torch, ElectraForPreTraining(config), 7).save_pretrained(hf_dir)
    ElectraTokenizer(vocab, do_lower_case=True).save_pretrained(hf_dir)
    original_dir = write_original(
        hf.read(str(hf_dir)), str(root / "original" / "electra_tiny"), vocab, state_file=True
    )
    return {"hf": hf_dir, "original": original_dir}


def _finetune_chunking(init_checkpoint, chunk_data, model_dir):
    return _check(
        _run(
            "electra_tf.run_finetuning",
            f"--init_checkpoint={init_checkpoint}",
            f"--model_dir={model_dir}",
            "--task_name=chunk",
            f"--data_dir={chunk_data}",
            f"--max_seq_length={SEQ}",
            "--train_batch_size=16",
            "--eval_batch_size=64",
            f"--learning_rate={LEARNING_RATE}",
            f"--max_train_steps={STEPS}",
            "--seeds=0",
        )
    )


def _fine_tuned_weights(model_dir):
    """The best checkpoint's weights under the original names (encoder + token head)."""
    from electra_tf.finetuning.models import ElectraForTokenClassification
    from electra_tf.model.config import ElectraConfig

    labels = json.loads((model_dir / "label_map.json").read_text())["labels"]
    model = ElectraForTokenClassification(
        ElectraConfig.load(str(model_dir / "config.json")), len(labels)
    )
    model.build()
    tf.train.Checkpoint(model=model).read(
        str(model_dir / "seed_0" / "best" / "model")
    ).assert_existing_objects_matched()
    return native.read_values(native.token_classifier_variables(model))


def test_run_finetuning_from_hf_and_original_checkpoints(tagging_checkpoints, chunk_data, tmp_path):
    hf_weights = hf.read(str(tagging_checkpoints["hf"]), role="encoder").weights
    tuned = {}
    for name in ("hf", "original"):
        model_dir = tmp_path / name
        proc = _finetune_chunking(tagging_checkpoints[name], chunk_data, model_dir)
        assert f"({name} format)" in proc.stderr, proc.stderr[-2000:]
        results = json.loads((model_dir / "results.json").read_text())
        assert results["steps"] == STEPS and np.isfinite(results["scores"]["0"])
        settings = json.loads((model_dir / "finetuning_settings.json").read_text())
        assert settings["do_lower_case"] is True
        tuned[name] = _fine_tuned_weights(model_dir)
        # Started from the HF weights: 4 Adam steps at lr 1e-5 move each weight by at most
        # ~1e-4 (random initial weights differ by ~0.05), and they did move.
        moved = max(float(np.max(np.abs(tuned[name][k] - v))) for k, v in hf_weights.items())
        assert 0 < moved < 5e-4, (name, moved)
    for key, value in tuned["hf"].items():
        np.testing.assert_allclose(tuned["original"][key], value, atol=1e-6, err_msg=key)


def test_run_finetuning_names_an_unusable_init_checkpoint(chunk_data, tmp_path):
    unknown = tmp_path / "downloads"
    unknown.mkdir()
    (unknown / "README.md").write_text("model card\n")
    proc = _run(
        "electra_tf.run_finetuning",
        f"--init_checkpoint={unknown}",
        f"--model_dir={tmp_path / 'm'}",
        "--task_name=chunk",
        f"--data_dir={chunk_data}",
    )
    assert proc.returncode != 0
    assert f"--init_checkpoint: {unknown} holds no checkpoint" in proc.stderr, proc.stderr[-2000:]
    assert "model.safetensors" in proc.stderr and "Traceback" not in proc.stderr
