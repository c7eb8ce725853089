"""Command line: python -m electra_tf.convert <subcommand> [flags]; --help on each."""

import argparse
import os
import sys

import electra_tf  # noqa: F401  (selects the Keras backend)
from electra_tf.convert.report import ConversionError, read_checkpoint
from electra_tf.filenames import CONVERTED_FLAGS_FILE, DISCRIMINATOR_DIR, GENERATOR_DIR, VOCAB_FILE
from electra_tf.files import OutputExistsError, check_output_dir


def _load_config(path):
    if path is None:
        return None
    from electra_tf.convert.load import read_config_file

    return read_config_file(path)


def _vocab(args, *dirs):
    if getattr(args, "vocab_file", None):
        return args.vocab_file
    for d in dirs:
        if d and os.path.exists(os.path.join(d, VOCAB_FILE)):
            return os.path.join(d, VOCAB_FILE)
    return None


def _one_output(args):
    if bool(args.output_dir) == bool(args.model_dir):
        raise ConversionError(
            "Pass exactly one of --output_dir (a discriminator directory, "
            "ElectraEncoder.save_pretrained layout) or --model_dir (a full "
            "pre-training checkpoint that run_pretraining resumes)"
        )
    if args.output_dir:
        check_output_dir(args.output_dir, "--output_dir", args.overwrite)
    else:
        check_output_dir(args.model_dir, "--model_dir", args.overwrite)


def _write_ours(args, bundle, vocab_file, source):
    from electra_tf.convert import native

    if args.model_dir:
        if not vocab_file:
            raise ConversionError("--model_dir needs --vocab_file (run_pretraining needs it too)")
        saved = native.write_pretraining_dir(
            bundle,
            args.model_dir,
            vocab_file,
            max_seq_length=args.max_seq_length,
            include_optimizer=getattr(args, "include_optimizer", False),
            seed=args.seed,
        )
        print(
            f"Wrote pre-training checkpoint {saved} (step {bundle.global_step or 0}) from "
            f"{source}.\nResume with: python -m electra_tf.run_pretraining "
            f"--flagfile={args.model_dir}/{CONVERTED_FLAGS_FILE} --model_dir={args.model_dir} "
            f"--vocab_file={vocab_file} --pretrain_tfrecords=..."
        )
    elif bundle.num_labels is not None:
        native.write_token_classifier_dir(bundle, args.output_dir, vocab_file)
        print(f"Wrote token classifier ({bundle.num_labels} labels) to {args.output_dir}")
    else:
        native.write_encoder_dir(bundle, args.output_dir, vocab_file)
        print(f"Wrote discriminator to {args.output_dir} (ElectraEncoder.from_pretrained)")


def cmd_from_original(args):
    from electra_tf.convert import original
    from electra_tf.data import tokenization

    _one_output(args)
    vocab_file = _vocab(args)
    bundle = read_checkpoint(
        original.read,
        args.checkpoint,
        args.num_attention_heads,
        args.generator_num_attention_heads,
        expected_discriminator=_load_config(args.config),
        expected_generator=_load_config(args.generator_config),
        include_optimizer=args.include_optimizer,
        vocab_size=len(tokenization.load_vocab(vocab_file)) if vocab_file else None,
    )
    _write_ours(args, bundle, vocab_file, args.checkpoint)


def _read_ours(args):
    from electra_tf.convert import native

    sources = [
        s for s in ("model_dir", "encoder_dir", "token_classifier_dir") if getattr(args, s, None)
    ]
    if len(sources) != 1:
        raise ConversionError(
            "Pass exactly one source: --model_dir (run_pretraining), "
            "--encoder_dir (discriminator dir) or --token_classifier_dir"
        )
    if args.model_dir:
        return native.read_pretraining_dir(
            args.model_dir,
            args.checkpoint,
            include_optimizer=getattr(args, "include_optimizer", False),
        )
    if args.encoder_dir:
        return native.read_encoder_dir(args.encoder_dir)
    return native.read_token_classifier_dir(args.token_classifier_dir)


def cmd_to_original(args):
    from electra_tf.convert import original

    if not args.overwrite and os.path.exists(f"{args.output}.index"):
        raise OutputExistsError(
            f"--output={args.output}: a checkpoint {args.output}.index is already there. "
            "Choose a new prefix, or pass --overwrite to replace it."
        )
    bundle = _read_ours(args)
    prefix = original.write(bundle, args.output, include_optimizer=args.include_optimizer)
    print(f"Wrote original-format checkpoint {prefix}")


def cmd_from_hf(args):
    from electra_tf.convert import hf

    _one_output(args)
    bundle = hf.read(args.hf_dir)
    if args.generator_hf_dir:
        bundle = hf.combine(bundle, hf.read(args.generator_hf_dir, role="generator"))
    _write_ours(args, bundle, _vocab(args, args.hf_dir), args.hf_dir)


def cmd_to_hf(args):
    from electra_tf.convert import hf, original

    check_output_dir(args.output_dir, "--output_dir", args.overwrite)
    if args.original_checkpoint:
        bundle = read_checkpoint(
            original.read,
            args.original_checkpoint,
            args.num_attention_heads,
            args.generator_num_attention_heads,
            include_optimizer=False,
        )
    else:
        bundle = _read_ours(args)
    vocab_file = _vocab(args, args.encoder_dir, args.token_classifier_dir, args.model_dir)
    if bundle.num_labels is not None:
        hf.write(bundle, args.output_dir, "token_classification", vocab_file)
        written = [args.output_dir]
    elif bundle.generator is not None:
        hf.write(bundle, f"{args.output_dir}/{DISCRIMINATOR_DIR}", "discriminator", vocab_file)
        hf.write(bundle, f"{args.output_dir}/{GENERATOR_DIR}", "generator", vocab_file)
        written = [f"{args.output_dir}/{DISCRIMINATOR_DIR}", f"{args.output_dir}/{GENERATOR_DIR}"]
    else:
        kind = "discriminator" if bundle.has_discriminator_head else "model"
        hf.write(bundle, args.output_dir, kind, vocab_file)
        written = [args.output_dir]
    print("Wrote HF ELECTRA weights (safetensors) to " + ", ".join(written))


def cmd_from_tf_models(args):
    from electra_tf.convert import tf_models
    from electra_tf.data import tokenization

    _one_output(args)
    vocab_file = _vocab(args)
    bundle = read_checkpoint(
        tf_models.read,
        args.checkpoint,
        args.num_attention_heads,
        len(tokenization.load_vocab(vocab_file)) if vocab_file else None,
    )
    _write_ours(args, bundle, vocab_file, args.checkpoint)


def cmd_to_keras_hub(args):
    from electra_tf.convert import keras_hub

    bundle = _read_ours(args)
    vocab_file = _vocab(args, args.encoder_dir, args.token_classifier_dir, args.model_dir)
    if not vocab_file:
        raise ConversionError(
            "to-keras-hub needs the vocabulary for the preset's tokenizer: put vocab.txt beside "
            "the source or pass --vocab_file"
        )
    keras_hub.write(bundle, args.output_dir, vocab_file, args.do_lower_case, args.overwrite)
    print(
        f"Wrote keras-hub preset {args.output_dir} "
        "(keras_hub.models.ElectraBackbone / ElectraTokenizer.from_preset)"
    )


def cmd_from_keras_hub(args):
    from electra_tf.convert import keras_hub

    _one_output(args)
    bundle = keras_hub.read(args.preset_dir)
    vocab_file = args.vocab_file or keras_hub.vocabulary_file(args.preset_dir)
    _write_ours(args, bundle, vocab_file, args.preset_dir)


def parser():
    p = argparse.ArgumentParser(prog="python -m electra_tf.convert", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    _add_from_original(sub)
    _add_to_original(sub)
    _add_from_hf(sub)
    _add_to_hf(sub)
    _add_from_tf_models(sub)
    _add_to_keras_hub(sub)
    _add_from_keras_hub(sub)
    return p


def _add_outputs(s, pretraining=True):
    s.add_argument(
        "--output_dir",
        help="Write our discriminator directory "
        "(config.json + encoder.ckpt [+ vocab.txt]), or a token classifier.",
    )
    if pretraining:
        s.add_argument(
            "--model_dir",
            help="Write a pre-training --model_dir "
            "(generator + discriminator) that run_pretraining resumes from.",
        )
        s.add_argument(
            "--max_seq_length",
            type=int,
            default=128,
            help="Recorded in pretraining_settings.json (the data's length).",
        )
        s.add_argument("--seed", type=int, default=0)
    else:
        s.set_defaults(model_dir=None)
    s.add_argument("--vocab_file", help="Vocabulary to check against and copy.")
    _add_overwrite(s)


def _add_overwrite(s):
    s.add_argument(
        "--overwrite",
        action="store_true",
        help="Write into a non-empty output folder (files of the same names are replaced).",
    )


def _add_heads(s):
    s.add_argument(
        "--num_attention_heads",
        type=int,
        help="Discriminator heads (default hidden_size // 64, the original rule).",
    )
    s.add_argument(
        "--generator_num_attention_heads",
        type=int,
        help="Generator heads (default its hidden_size // 64).",
    )


def _add_our_sources(s):
    s.add_argument("--model_dir", help="A run_pretraining --model_dir.")
    s.add_argument("--checkpoint", help="A specific checkpoint in --model_dir (default latest).")
    s.add_argument("--encoder_dir", help="A discriminator directory (save_pretrained).")
    s.add_argument("--token_classifier_dir", help="A token classifier written by from-hf.")


def _add_from_original(sub):
    s = sub.add_parser("from-original", help="google-research/electra TF1 checkpoint -> ours")
    s.add_argument("--checkpoint", required=True, help="Checkpoint prefix or directory.")
    _add_heads(s)
    s.add_argument(
        "--config",
        help="Expected discriminator config (ours or HF config.json); "
        "the checkpoint is checked against it instead of inferring one.",
    )
    s.add_argument("--generator_config", help="Expected generator config.")
    s.add_argument(
        "--include_optimizer",
        action="store_true",
        help="Also convert adam_m/adam_v and global_step (for --model_dir).",
    )
    _add_outputs(s)
    s.set_defaults(func=cmd_from_original)


def _add_to_original(sub):
    s = sub.add_parser("to-original", help="ours -> google-research/electra TF1 checkpoint")
    _add_our_sources(s)
    s.add_argument(
        "--output", required=True, help="Checkpoint prefix to write, e.g. out/model.ckpt"
    )
    s.add_argument(
        "--include_optimizer",
        action="store_true",
        help="Also write <var>/adam_m, <var>/adam_v and global_step.",
    )
    _add_overwrite(s)
    s.set_defaults(func=cmd_to_original)


def _add_from_hf(sub):
    s = sub.add_parser("from-hf", help="Hugging Face ELECTRA (safetensors) -> ours")
    s.add_argument(
        "--hf_dir",
        required=True,
        help="ElectraModel / ElectraForPreTraining / "
        "ElectraForTokenClassification directory (config.json + weights).",
    )
    s.add_argument("--generator_hf_dir", help="ElectraForMaskedLM directory (with --model_dir).")
    _add_outputs(s)
    s.set_defaults(func=cmd_from_hf)


def _add_to_hf(sub):
    s = sub.add_parser("to-hf", help="ours (or an original checkpoint) -> Hugging Face")
    _add_our_sources(s)
    s.add_argument("--original_checkpoint", help="Convert a TF1 checkpoint instead.")
    _add_heads(s)
    s.add_argument("--output_dir", required=True)
    s.add_argument("--vocab_file")
    _add_overwrite(s)
    s.set_defaults(func=cmd_to_hf)


def _add_from_tf_models(sub):
    s = sub.add_parser("from-tf-models", help="tf-models-official / TF Hub BertEncoder -> ours")
    s.add_argument(
        "--checkpoint", required=True, help="Checkpoint prefix, directory or SavedModel."
    )
    s.add_argument("--num_attention_heads", type=int, help="Checked against the checkpoint.")
    _add_outputs(s, pretraining=False)
    s.set_defaults(func=cmd_from_tf_models)


def _add_to_keras_hub(sub):
    s = sub.add_parser("to-keras-hub", help="ours -> keras-hub ElectraBackbone + tokenizer preset")
    _add_our_sources(s)
    s.add_argument("--output_dir", required=True, help="The preset directory to write.")
    s.add_argument("--vocab_file", help="Vocabulary (default: vocab.txt beside the source).")
    s.add_argument(
        "--do_lower_case",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="The preset tokenizer lower-cases and strips accents (as the vocabulary was built).",
    )
    s.add_argument("--overwrite", action="store_true", help="Write into a non-empty --output_dir.")
    s.set_defaults(func=cmd_to_keras_hub)


def _add_from_keras_hub(sub):
    s = sub.add_parser("from-keras-hub", help="keras-hub ElectraBackbone preset -> ours")
    s.add_argument(
        "--preset_dir",
        required=True,
        help="A local preset directory (config.json + model.weights.h5 [+ tokenizer]).",
    )
    _add_outputs(s, pretraining=False)
    s.set_defaults(func=cmd_from_keras_hub)


def main(argv=None):
    """Runs one subcommand; a user error prints `error: ...` (no traceback) and returns 2."""
    args = parser().parse_args(argv)
    import tensorflow as tf

    try:
        args.func(args)
    # ValueError covers ConversionError, ConfigError and a vocabulary that does not parse;
    # OSError a missing or unreadable file.
    except (ValueError, OSError, OutputExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except tf.errors.OpError as e:
        print(
            f"error: cannot read a TF checkpoint ({e.message.strip().splitlines()[0]}): its "
            ".index or .data-* file is damaged, incomplete or missing; copy it again",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
