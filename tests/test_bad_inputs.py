"""The bad-input campaign: malformed inputs across the CLIs and the Python API.

Each case builds its malformed input in a folder of its own (beside a shared workspace of good
inputs) and asserts a named error: the exception type for the API, or for a CLI a non-zero exit
with no traceback; either way the message names the bad input. Every file that existed before
the call (the workspace and the case's folder) has the same sha256 afterwards.

The tables are lists of cases with ids: append a `Case` to API_CASES or CLI_CASES to add one.
CLI cases run as subprocesses (a TensorFlow start-up each), so there is one per CLI and kind of
input; the others run in-process.
"""

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.convert import hf, native, original
from electra_tf.convert.__main__ import main as convert_main
from electra_tf.convert.load import UnknownCheckpointFormat, load_encoder
from electra_tf.convert.report import ConversionError
from electra_tf.data import tokenization
from electra_tf.data.pretraining_input import check_shards, check_vocabulary
from electra_tf.data.pretraining_records import EmptyCorpusError, build_pretraining_dataset
from electra_tf.model.config import ConfigError, ElectraConfig
from electra_tf.model.encoder import ElectraEncoder
from electra_tf.pretraining.checkpoints import CheckpointError, latest_checkpoint
from electra_tf.serving.limits import RequestLimits, check_texts

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
TINY = ElectraConfig(
    vocab_size=12, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
)
WORDS = ["the", "cat", "sat", "on", "mat", "##s", "a"]
SEQ_LENGTH = 8


@dataclasses.dataclass(frozen=True)
class Workspace:
    """Good inputs the cases start from (never modified: the campaign checks their hashes)."""

    root: pathlib.Path
    vocab: pathlib.Path
    corpus: pathlib.Path
    encoder_dir: pathlib.Path
    hf_dir: pathlib.Path
    original_prefix: pathlib.Path
    shard: pathlib.Path


@dataclasses.dataclass(frozen=True)
class Case:
    """One malformed input.

    `prepare(workspace, folder)` writes the bad input into `folder` and returns (what to run,
    the text the message must contain). What to run is a zero-argument callable for API cases
    and `[module, *args]` for CLI cases. `error` is the exception an API case must raise.
    """

    id: str
    prepare: Callable
    error: type[BaseException] | None = None


def _example(length, **lengths):
    feature = {
        name: tf.train.Feature(int64_list=tf.train.Int64List(value=[1] * lengths.get(name, length)))
        for name in ("input_ids", "input_mask", "segment_ids")
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_records(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("workspace")
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join([*tokenization.SPECIAL_TOKENS, *WORDS]) + "\n")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("the cat sat on the mat\n\na cat sat\n")
    encoder_dir = root / "encoder"
    encoder = ElectraEncoder(TINY)
    encoder(encoder.dummy_inputs())
    encoder.save_pretrained(str(encoder_dir))
    shutil.copy(vocab, encoder_dir / "vocab.txt")
    bundle = native.read_encoder_dir(str(encoder_dir))
    hf.write(bundle, str(root / "hf"), "model", str(vocab))
    (root / "original").mkdir()
    original_prefix = root / "original" / "model.ckpt"
    original.write(bundle, str(original_prefix))
    shard = _write_records(root / "shard-0", [_example(SEQ_LENGTH)] * 3)
    return Workspace(
        root, vocab, corpus, encoder_dir, root / "hf", original_prefix, pathlib.Path(shard)
    )


# ---- helpers that build malformed inputs ----


def _text(path, text):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


def _copy(source, target):
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy(source, target)
    return target


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _data_file(prefix_path):
    return next(prefix_path.parent.glob(prefix_path.name + ".data-*"))


def _vocab_without(token):
    return "\n".join(t for t in [*tokenization.SPECIAL_TOKENS, *WORDS] if t != token) + "\n"


def _config_case(text):
    def prepare(ws, d):
        path = _text(d / "config.json", text)
        return (lambda: ElectraConfig.load(path)), path

    return prepare


def _vocab_case(content):
    def prepare(ws, d):
        path = _text(d / "vocab.txt", content)
        return (lambda: tokenization.load_vocab(path)), path

    return prepare


def _shards_case(build, max_seq_length=SEQ_LENGTH):
    def prepare(ws, d):
        path = str(build(ws, d))
        return (lambda: check_shards(path, max_seq_length)), path

    return prepare


def _encoder_case(damage):
    """load_encoder on a copy of the good encoder folder, damaged by `damage(folder)`."""

    def prepare(ws, d):
        folder = _copy(ws.encoder_dir, d / "encoder")
        damage(folder)
        return (lambda: load_encoder(str(folder))), str(folder)

    return prepare


def _original_case(damage):
    def prepare(ws, d):
        folder = _copy(ws.original_prefix.parent, d / "original")
        prefix = folder / ws.original_prefix.name
        damage(prefix)
        return (lambda: load_encoder(str(prefix))), str(prefix)

    return prepare


def _hf_case(damage):
    """load_encoder on a copy of the good HF folder; `damage(folder)` returns what to name
    (None: the folder)."""

    def prepare(ws, d):
        folder = _copy(ws.hf_dir, d / "hf")
        named_path = damage(folder) or folder
        return (lambda: load_encoder(str(folder))), str(named_path)

    return prepare


def _sharded(folder, shard_name):
    """The folder's weights as one shard named `shard_name` in a safetensors index."""
    os.rename(folder / "model.safetensors", folder / "model-00001.safetensors")
    index = {"metadata": {}, "weight_map": {"embeddings.word_embeddings.weight": shard_name}}
    return _text(folder / "model.safetensors.index.json", json.dumps(index))


def _escaping_shard(shard_name):
    """An index naming a shard outside the folder, with real weights there to read."""

    def damage(folder):
        outside = (folder / shard_name).resolve()
        outside.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / "model.safetensors", outside)
        _sharded(folder, shard_name)
        return shard_name

    return damage


def _absolute_shard(folder):
    return _escaping_shard(str(folder.parent / "elsewhere" / "weights.safetensors"))(folder)


def _escaping_symlink(folder):
    outside = folder.parent / "outside.safetensors"
    shutil.copy(folder / "model.safetensors", outside)
    _sharded(folder, "linked.safetensors")
    os.symlink(outside, folder / "linked.safetensors")
    return "linked.safetensors"


def _hf_config(folder, **changes):
    path = folder / "config.json"
    values = json.loads(path.read_text())
    values.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del values[key]
    return _text(path, json.dumps(values))


class ExitedWithError(Exception):
    """An in-process CLI `main` returned non-zero; the message is what it printed."""


def _convert(*args):
    def run():
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            code = convert_main([str(a) for a in args])
        if code:
            raise ExitedWithError(stderr.getvalue())

    return run


def _convert_into_non_empty(ws, d):
    target = d / "out"
    _text(target / "notes.txt", "keep me")
    return _convert("from-hf", "--hf_dir", ws.hf_dir, "--output_dir", target), str(target)


def _convert_over_existing_prefix(ws, d):
    prefix = _copy(ws.original_prefix.parent, d / "original") / ws.original_prefix.name
    return _convert("to-original", "--encoder_dir", ws.encoder_dir, "--output", prefix), str(prefix)


def _convert_truncated_original(ws, d):
    prefix = _copy(ws.original_prefix.parent, d / "original") / ws.original_prefix.name
    _truncate(pathlib.Path(f"{prefix}.index"))
    args = ("from-original", "--checkpoint", prefix, "--output_dir", d / "out")
    return _convert(*args), str(prefix)


def _convert_model_dir_without_generator(ws, d):
    args = ("from-hf", "--hf_dir", ws.hf_dir, "--model_dir", d / "model")
    return _convert(*args), "--generator_hf_dir"


def _empty_shard_set(ws, d):
    for index in range(2):
        _write_records(d / f"empty-{index}", [])
    return d / "empty-*"


def _build_from_empty_corpus(ws, d):
    """A rebuild over existing shards from a corpus with no text: the old shards must stay."""
    output_dir = d / "shards"
    output_dir.mkdir()
    _copy(ws.shard, output_dir / "pretrain_data.tfrecord-00000-of-00001")
    corpus_file = _text(d / "corpus" / "blank.txt", "\n\n\n")
    return (
        lambda: build_pretraining_dataset(
            [corpus_file],
            str(ws.vocab),
            str(output_dir),
            max_seq_length=SEQ_LENGTH,
            num_out_files=1,
        )
    ), corpus_file


def _checkpoint_state(state_file_text):
    """ckpt-N files beside a `checkpoint` state file that is missing (None) or damaged."""

    def prepare(ws, d):
        model_dir = d / "model"
        tf.train.Checkpoint(step=tf.Variable(3)).write(str(model_dir / "ckpt-3"))
        if state_file_text is not None:
            _text(model_dir / "checkpoint", state_file_text)
        return (lambda: latest_checkpoint(str(model_dir))), f"{model_dir}/checkpoint"

    return prepare


def _data_built_with_another_vocab(ws, d):
    shards = d / "shards"
    shards.mkdir()
    _copy(ws.shard, shards / "pretrain_data.tfrecord-00000-of-00001")
    other_vocab = [*tokenization.SPECIAL_TOKENS, *reversed(WORDS)]
    _text(
        shards / "dataset_info.json",
        json.dumps(
            {
                "vocab_file": "other.txt",
                "vocab_size": len(other_vocab),
                "vocab_sha256": tokenization.vocab_sha256(other_vocab),
            }
        ),
    )
    tokens = [*tokenization.SPECIAL_TOKENS, *WORDS]
    pattern = str(shards / "pretrain_data.tfrecord-*")
    return (lambda: check_vocabulary(pattern, str(ws.vocab), tokens)), str(ws.vocab)


def _serving_request(texts, limits):
    """The export's request check on `texts` (the exports' end-to-end refusals are in
    test_serving_limits.py)."""

    def run():
        check_texts(tf.constant(texts), limits, "texts", limits.max_text_bytes, "max_text_bytes")

    def prepare(ws, d):
        return run, "over the limit"

    return prepare


def _two_checkpoints(ws, d):
    for name in ("a", "b"):
        _copy(pathlib.Path(f"{ws.original_prefix}.index"), d / f"{name}.index")
        _copy(_data_file(ws.original_prefix), d / f"{name}.data-00000-of-00001")
    return (lambda: load_encoder(str(d))), str(d)


API_CASES = [
    # config.json
    Case("config-bad-json", _config_case('{"hidden_size": 32,'), ConfigError),
    Case("config-not-an-object", _config_case("[1, 2]"), ConfigError),
    Case("config-string-size", _config_case('{"hidden_size": "32"}'), ConfigError),
    Case("config-bool-size", _config_case('{"num_hidden_layers": true}'), ConfigError),
    Case("config-float-size", _config_case('{"vocab_size": 100.5}'), ConfigError),
    Case("config-negative-size", _config_case('{"vocab_size": -5}'), ConfigError),
    Case(
        "config-huge-size", _config_case('{"max_position_embeddings": 1000000000000}'), ConfigError
    ),
    Case("config-dropout-one", _config_case('{"hidden_dropout_prob": 1.0}'), ConfigError),
    Case(
        "config-heads-do-not-divide",
        _config_case('{"hidden_size": 32, "num_attention_heads": 3}'),
        ConfigError,
    ),
    Case("config-unknown-act", _config_case('{"hidden_act": "relu"}'), ConfigError),
    Case("config-unknown-field", _config_case('{"hiden_size": 32}'), ConfigError),
    Case("config-binary", _config_case(b"\x00\xff\xfe"), ConfigError),
    # vocabularies
    Case("vocab-empty", _vocab_case(""), ValueError),
    *(
        Case(
            f"vocab-no-{token.strip('[]').lower()}", _vocab_case(_vocab_without(token)), ValueError
        )
        for token in tokenization.SPECIAL_TOKENS
    ),
    Case(
        "vocab-duplicate",
        _vocab_case("\n".join([*tokenization.SPECIAL_TOKENS, "cat", "cat"]) + "\n"),
        ValueError,
    ),
    Case("vocab-binary", _vocab_case(b"[PAD]\n\xff\xfe\x00\x81\n"), ValueError),
    Case("vocab-blank-line", _vocab_case(_vocab_without("") + "\n\ncat2\n"), ValueError),
    Case(
        "vocab-missing",
        lambda ws, d: (lambda: tokenization.load_vocab(str(d / "nope.txt")), "nope.txt"),
        FileNotFoundError,
    ),
    # pre-training shards
    Case(
        "shards-wrong-feature-length",
        _shards_case(lambda ws, d: _copy(ws.shard, d / "shard"), max_seq_length=16),
        ValueError,
    ),
    Case(
        "shards-not-tfrecords",
        _shards_case(lambda ws, d: _text(d / "shard", "the cat sat on the mat\n" * 20)),
        ValueError,
    ),
    Case(
        "shards-truncated",
        _shards_case(lambda ws, d: _text(d / "shard", ws.shard.read_bytes()[:20])),
        ValueError,
    ),
    Case(
        "shards-not-examples",
        _shards_case(lambda ws, d: _write_records(d / "shard", [b"\xff\x01not a proto"])),
        ValueError,
    ),
    Case(
        "shards-missing-feature",
        _shards_case(lambda ws, d: _write_records(d / "shard", [_example(8, segment_ids=0)])),
        ValueError,
    ),
    Case(
        "shards-ragged-features",
        _shards_case(lambda ws, d: _write_records(d / "shard", [_example(8, input_mask=7)])),
        ValueError,
    ),
    Case("shards-missing", _shards_case(lambda ws, d: d / "no-shards-*"), FileNotFoundError),
    Case("shards-empty-set", _shards_case(_empty_shard_set), ValueError),
    Case("shards-built-with-another-vocab", _data_built_with_another_vocab, ValueError),
    Case("build-empty-corpus-keeps-old-shards", _build_from_empty_corpus, EmptyCorpusError),
    # pre-training checkpoints: the `checkpoint` state file beside ckpt-N files
    Case("checkpoint-state-file-missing", _checkpoint_state(None), CheckpointError),
    Case("checkpoint-state-file-corrupt", _checkpoint_state("\x00garbage{"), CheckpointError),
    Case("checkpoint-state-file-empty", _checkpoint_state(""), CheckpointError),
    # export requests
    Case(
        "serving-text-over-byte-limit",
        _serving_request(["word " * 30], RequestLimits(max_text_bytes=100)),
        tf.errors.InvalidArgumentError,
    ),
    Case(
        "serving-too-many-texts",
        _serving_request(["a"] * 9, RequestLimits(max_texts=8)),
        tf.errors.InvalidArgumentError,
    ),
    Case(
        "serving-request-over-byte-limit",
        _serving_request(["b" * 60] * 4, RequestLimits(max_request_bytes=200)),
        tf.errors.InvalidArgumentError,
    ),
    # electra-tf checkpoints (save_pretrained folders)
    Case(
        "checkpoint-truncated-index",
        _encoder_case(lambda f: _truncate(f / "encoder.ckpt.index")),
        ConversionError,
    ),
    Case(
        "checkpoint-missing-data",
        _encoder_case(lambda f: os.remove(_data_file(f / "encoder.ckpt"))),
        ConversionError,
    ),
    Case(
        "checkpoint-garbage-data",
        _encoder_case(lambda f: _data_file(f / "encoder.ckpt").write_bytes(b"\x07" * 64)),
        ConversionError,
    ),
    Case(
        "checkpoint-config-bad-json",
        _encoder_case(lambda f: _text(f / "config.json", "{oops")),
        ConversionError,
    ),
    Case(
        "checkpoint-config-wrong-type",
        _encoder_case(lambda f: _text(f / "config.json", '{"hidden_size": "16"}')),
        ConversionError,
    ),
    Case(
        "checkpoint-config-does-not-match",
        _encoder_case(
            lambda f: _text(f / "config.json", json.dumps(TINY.replace(hidden_size=32).to_dict()))
        ),
        ConversionError,
    ),
    Case(
        "checkpoint-missing-config",
        _encoder_case(lambda f: os.remove(f / "config.json")),
        ConversionError,
    ),
    # google-research/electra (TF1) checkpoints
    Case(
        "original-truncated-index",
        _original_case(lambda p: _truncate(pathlib.Path(f"{p}.index"))),
        ConversionError,
    ),
    Case(
        "original-missing-data",
        _original_case(lambda p: os.remove(_data_file(p))),
        ConversionError,
    ),
    Case(
        "original-garbage-index",
        _original_case(lambda p: pathlib.Path(f"{p}.index").write_bytes(b"garbage" * 10)),
        ConversionError,
    ),
    Case(
        "original-missing-prefix",
        lambda ws, d: (lambda: load_encoder(str(d / "model.ckpt")), str(d / "model.ckpt")),
        UnknownCheckpointFormat,
    ),
    Case("original-two-checkpoints-no-state-file", _two_checkpoints, ConversionError),
    # Hugging Face folders
    Case(
        "hf-missing-weights",
        _hf_case(lambda f: os.remove(f / "model.safetensors")),
        UnknownCheckpointFormat,
    ),
    Case(
        "hf-missing-config",
        _hf_case(lambda f: os.remove(f / "config.json") or f / "config.json"),
        ConversionError,
    ),
    Case(
        "hf-truncated-safetensors",
        _hf_case(lambda f: _truncate(f / "model.safetensors") or f / "model.safetensors"),
        ConversionError,
    ),
    Case(
        "hf-shard-parent",
        _hf_case(_escaping_shard("../outside.safetensors")),
        ConversionError,
    ),
    Case("hf-shard-absolute", _hf_case(_absolute_shard), ConversionError),
    Case("hf-shard-symlink-escapes", _hf_case(_escaping_symlink), ConversionError),
    Case(
        "hf-shard-missing",
        _hf_case(
            lambda f: _sharded(f, "model-00002.safetensors") and f / "model-00002.safetensors"
        ),
        ConversionError,
    ),
    Case(
        "hf-index-bad-json",
        _hf_case(lambda f: _sharded(f, "x") and _text(f / "model.safetensors.index.json", "{")),
        ConversionError,
    ),
    Case(
        "hf-index-no-weight-map",
        _hf_case(lambda f: _sharded(f, "x") and _text(f / "model.safetensors.index.json", "{}")),
        ConversionError,
    ),
    Case("hf-config-bad-json", _hf_case(lambda f: _text(f / "config.json", "{")), ConversionError),
    Case(
        "hf-config-not-electra",
        _hf_case(lambda f: _hf_config(f, model_type="bert")),
        ConversionError,
    ),
    Case(
        "hf-config-string-size",
        _hf_case(lambda f: _hf_config(f, num_hidden_layers="1")),
        ConversionError,
    ),
    Case(
        "hf-config-lacks-hidden-size",
        _hf_case(lambda f: _hf_config(f, hidden_size=None)),
        ConversionError,
    ),
    Case(
        "hf-config-dropout-out-of-range",
        _hf_case(lambda f: _hf_config(f, attention_probs_dropout_prob=1.5)),
        ConversionError,
    ),
    # convert, in-process (its CLI main)
    Case("convert-main-output-dir-not-empty", _convert_into_non_empty, ExitedWithError),
    Case("convert-main-output-prefix-exists", _convert_over_existing_prefix, ExitedWithError),
    Case("convert-main-truncated-original", _convert_truncated_original, ExitedWithError),
    Case(
        "convert-main-model-dir-without-generator",
        _convert_model_dir_without_generator,
        ExitedWithError,
    ),
]


def _cli_case(module, build):
    """A CLI case: `build(ws, d)` writes inputs and returns (args, the text to name)."""

    def prepare(ws, d):
        args, named = build(ws, d)
        return [module, *(str(a) for a in args)], str(named)

    return prepare


def _build_vocab_flags(input_files, vocab_file, *extra):
    return [f"--input_files={input_files}", f"--vocab_file={vocab_file}", *extra]


def _vocab_from(name, content):
    def build(ws, d):
        path = _text(d / name, content)
        return _build_vocab_flags(path, d / "vocab.txt"), path

    return build


def _vocab_with_flag(flag, named):
    def build(ws, d):
        return _build_vocab_flags(ws.corpus / "a.txt", d / "vocab.txt", flag), named

    return build


def _vocab_missing_input(ws, d):
    return _build_vocab_flags(d / "nope" / "*.txt", d / "vocab.txt"), d / "nope"


def _vocab_onto_input(ws, d):
    corpus_file = ws.corpus / "a.txt"
    return _build_vocab_flags(corpus_file, corpus_file), f"--vocab_file={corpus_file}"


def _convert_cli_into_non_empty(ws, d):
    return ["from-hf", f"--hf_dir={ws.hf_dir}", f"--output_dir={ws.encoder_dir}"], ws.encoder_dir


def _convert_cli_truncated(ws, d):
    _, prefix = _convert_truncated_original(ws, d)
    return ["from-original", f"--checkpoint={prefix}", f"--output_dir={d / 'out'}"], prefix


def _convert_cli_escaping_shard(ws, d):
    folder = _copy(ws.hf_dir, d / "hf")
    _sharded(folder, "../../x.safetensors")
    return ["from-hf", f"--hf_dir={folder}", f"--output_dir={d / 'out'}"], "../../x.safetensors"


def _convert_cli_heads_wrong_type(ws, d):
    args = ["from-original", f"--checkpoint={ws.original_prefix}", "--num_attention_heads=two"]
    return [*args, f"--output_dir={d / 'out'}"], "--num_attention_heads"


def _convert_cli_unknown_flag(ws, d):
    # Not a prefix of a real flag: argparse takes `--overwrit` as `--overwrite`.
    return ["to-hf", f"--encoder_dir={ws.encoder_dir}", f"--output_dir={d}", "--bogus=1"], "--bogus"


def _flags(*flags, named):
    """A case of flags alone; `{d}`, `{vocab}`, `{corpus}` in them are filled in."""

    def build(ws, d):
        filled = [f.format(d=d, vocab=ws.vocab, corpus=ws.corpus) for f in flags]
        return filled, named.format(d=d)

    return build


def _finetune_into_non_empty(ws, d):
    data_dir = d / "ner"
    _text(data_dir / "train.txt", "John B-PER\nsat O\n\nMary B-PER\n\n")
    flags = [
        "--task_name=ner",
        f"--data_dir={data_dir}",
        f"--init_checkpoint={ws.encoder_dir}",
        f"--model_dir={ws.corpus}",
    ]
    return flags, f"--model_dir={ws.corpus} is not empty"


BUILD_VOCAB = "electra_tf.build_vocab"
FINETUNE = "electra_tf.run_finetuning"
CONVERT = "electra_tf.convert"

CLI_CASES = [
    Case("build_vocab-missing-input", _cli_case(BUILD_VOCAB, _vocab_missing_input)),
    Case("build_vocab-empty-corpus", _cli_case(BUILD_VOCAB, _vocab_from("blank.txt", "\n\n"))),
    Case(
        "build_vocab-not-utf8",
        _cli_case(BUILD_VOCAB, _vocab_from("latin1.txt", "caf\xe9\n".encode("latin-1"))),
    ),
    Case("build_vocab-output-is-input", _cli_case(BUILD_VOCAB, _vocab_onto_input)),
    Case(
        "build_vocab-vocab-size-out-of-range",
        _cli_case(BUILD_VOCAB, _vocab_with_flag("--vocab_size=3", "--vocab_size")),
    ),
    Case(
        "build_vocab-vocab-size-wrong-type",
        _cli_case(BUILD_VOCAB, _vocab_with_flag("--vocab_size=many", "--vocab_size")),
    ),
    Case(
        "build_vocab-unknown-flag",
        _cli_case(BUILD_VOCAB, _vocab_with_flag("--vocabsize=9", "vocabsize")),
    ),
    Case("convert-output-dir-not-empty", _cli_case(CONVERT, _convert_cli_into_non_empty)),
    Case("convert-truncated-checkpoint", _cli_case(CONVERT, _convert_cli_truncated)),
    Case("convert-hf-shard-escapes", _cli_case(CONVERT, _convert_cli_escaping_shard)),
    Case("convert-heads-wrong-type", _cli_case(CONVERT, _convert_cli_heads_wrong_type)),
    Case("convert-unknown-flag", _cli_case(CONVERT, _convert_cli_unknown_flag)),
    Case(
        "build_pretraining_dataset-length-wrong-type",
        _cli_case(
            "electra_tf.build_pretraining_dataset",
            _flags(
                "--corpus_dir={corpus}",
                "--vocab_file={vocab}",
                "--output_dir={d}/shards",
                "--max_seq_length=long",
                named="--max_seq_length",
            ),
        ),
    ),
    Case(
        "build_pretraining_dataset-missing-corpus-dir",
        _cli_case(
            "electra_tf.build_pretraining_dataset",
            _flags(
                "--corpus_dir={d}/no-corpus",
                "--vocab_file={vocab}",
                "--output_dir={d}/shards",
                named="{d}/no-corpus",
            ),
        ),
    ),
    Case(
        "run_pretraining-missing-vocab",
        _cli_case(
            "electra_tf.run_pretraining",
            _flags(
                "--model_dir={d}/model",
                "--vocab_file={d}/nope.txt",
                "--pretrain_tfrecords={d}/shards/*",
                named="{d}/nope.txt",
            ),
        ),
    ),
    Case(
        "run_pretraining-steps-out-of-range",
        _cli_case(
            "electra_tf.run_pretraining",
            _flags(
                "--model_dir={d}/model",
                "--vocab_file={vocab}",
                "--pretrain_tfrecords={d}/shards/*",
                "--num_train_steps=-3",
                named="--num_train_steps",
            ),
        ),
    ),
    Case(
        "run_finetuning-unknown-flag",
        _cli_case("electra_tf.run_finetuning", _flags("--learning_rat=1e-4", named="learning_rat")),
    ),
    Case(
        "run_finetuning-wrong-type",
        _cli_case(
            "electra_tf.run_finetuning", _flags("--learning_rate=fast", named="--learning_rate")
        ),
    ),
    Case(
        "export_saved_model-missing-checkpoint",
        _cli_case(
            "electra_tf.export_saved_model",
            _flags("--checkpoint={d}/nope", "--export_dir={d}/export", named="{d}/nope"),
        ),
    ),
    Case(
        "predict-output-is-input",
        _cli_case(
            "electra_tf.predict",
            _flags(
                "--model={d}/nope",
                "--input={corpus}/a.txt",
                "--output={corpus}/a.txt",
                named="is the --input file",
            ),
        ),
    ),
    Case("run_finetuning-model-dir-not-empty", _cli_case(FINETUNE, _finetune_into_non_empty)),
    Case(
        "predict-missing-model",
        _cli_case(
            "electra_tf.predict",
            _flags("--model={d}/nope", "--input={corpus}/a.txt", named="{d}/nope"),
        ),
    ),
]


# ---- the campaign ----


def snapshot(*roots):
    """sha256 of every file under `roots` (symlinks as their target path)."""
    digests = {}
    for root in roots:
        for dirpath, _, filenames in os.walk(root):
            for name in filenames:
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    digests[path] = "link:" + os.readlink(path)
                else:
                    with open(path, "rb") as f:
                        digests[path] = hashlib.sha256(f.read()).hexdigest()
    return digests


def assert_unchanged(before, after):
    changed = sorted(p for p, digest in before.items() if after.get(p) != digest)
    assert not changed, f"pre-existing files changed or removed: {changed}"


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_api_bad_input_is_a_named_error(workspace, tmp_path, case):
    run, named = case.prepare(workspace, tmp_path)
    before = snapshot(workspace.root, tmp_path)
    with pytest.raises(case.error) as raised:
        run()
    assert named in str(raised.value), f"the message does not name {named}: {raised.value}"
    assert "Traceback" not in str(raised.value)
    assert_unchanged(before, snapshot(workspace.root, tmp_path))


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_bad_input_exits_with_one_named_error(workspace, tmp_path, case):
    args, named = case.prepare(workspace, tmp_path)
    before = snapshot(workspace.root, tmp_path)
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,  # a hang guard: TF start-up alone can take a minute on a loaded machine
    )
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert named in result.stderr, f"stderr does not name {named}: {result.stderr}"
    assert_unchanged(before, snapshot(workspace.root, tmp_path))


def test_campaign_size():
    assert len(API_CASES) + len(CLI_CASES) >= 40
    assert len({c.id for c in API_CASES + CLI_CASES}) == len(API_CASES) + len(CLI_CASES)
