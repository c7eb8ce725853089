"""electra_tf.export: a fine-tuned model as a TF Serving SavedModel version, in this process."""

import os

from electra_tf.files import check_output_dir
from electra_tf.serving import export as export_lib
from electra_tf.serving.limits import RequestLimits

TOKENIZERS = ("core", "tensorflow_text")
# Question answering settings when neither the caller nor the fine-tuning run gives them.
QA_DEFAULTS = {"doc_stride": 128, "max_query_length": 64, "max_answer_length": 30}


def _setting(given, settings, name, default):
    """An explicit value, else the fine-tuning run's setting, else the default."""
    if given is not None:
        return given
    saved = settings.get(name)  # None in a settings file: the checkpoint's own, unknown here
    return default if saved is None else type(default)(saved)


def holds_only_versions(export_dir: str) -> bool:
    """Is every entry of `export_dir` a version folder (or an export's own temporary one)?"""
    return all(
        (name.isdigit() and os.path.isdir(os.path.join(export_dir, name)))
        or name.startswith((".tmp-", ".old-"))
        for name in os.listdir(export_dir)
    )


def export(
    checkpoint: str,
    export_dir: str,
    *,
    task: str = "token_classification",
    version: int | None = None,
    overwrite: bool = False,
    tokenizer: str = "core",
    max_seq_length: int | None = None,
    do_lower_case: bool | None = None,
    doc_stride: int | None = None,
    max_query_length: int | None = None,
    max_answer_length: int | None = None,
    config_file: str | None = None,
    vocab_file: str | None = None,
    label_map: str | None = None,
    model_name: str | None = None,
    max_texts: int | None = None,
    max_text_bytes: int | None = None,
    max_request_bytes: int | None = None,
    max_context_bytes: int | None = None,
) -> str:
    """Exports a fine-tuned model to <export_dir>/<version>/; returns that path.

    The arguments are export_saved_model's flags. `checkpoint`: a finetune() model_dir (its
    best seed by results.json), a seed_<s> folder, a folder with model.index, or a checkpoint
    prefix. `task`: token_classification, classification, regression, squad or squadv2.
    Settings left None come from the run's finetuning_settings.json, else max_seq_length 128,
    do_lower_case True and QA_DEFAULTS. The version defaults to one more than the highest
    existing one, replaced only with overwrite=True. Raises export.ExportError or
    FileNotFoundError naming the problem.

    Example (runs/chunk: a finetune() or run_finetuning model_dir):

    ```python
    import electra_tf

    path = electra_tf.export("runs/chunk", "export/models/chunk")  # export/models/chunk/1
    ```
    """
    if tokenizer not in TOKENIZERS:
        raise export_lib.ExportError(f"tokenizer must be one of {TOKENIZERS}, got {tokenizer!r}")
    if tokenizer != "core" and task != "token_classification":
        raise export_lib.ExportError(
            "--tokenizer=tensorflow_text is only available for --task=token_classification"
        )
    given_limits = {
        "max_texts": max_texts,
        "max_text_bytes": max_text_bytes,
        "max_request_bytes": max_request_bytes,
        "max_context_bytes": max_context_bytes,
    }
    limits = RequestLimits(**{k: v for k, v in given_limits.items() if v is not None})
    export_dir = os.path.abspath(export_dir)
    # Refuse a foreign folder or an existing version before loading anything.
    check_output_dir(export_dir, "--export_dir", overwrite, holds_only_versions)
    export_lib.resolve_version(export_dir, version, overwrite)
    model, vocab, labels, settings, _ = export_lib.load_finetuned(
        checkpoint, task, config_file, vocab_file, label_map
    )
    common = dict(
        do_lower_case=_setting(do_lower_case, settings, "do_lower_case", True),
        max_seq_length=_setting(max_seq_length, settings, "max_seq_length", 128),
        version=version,
        overwrite=overwrite,
        model_name=model_name,
        limits=limits,
    )
    if task == "token_classification":
        return export_lib.export_token_classifier(
            model, vocab, labels, export_dir, tokenizer=tokenizer, **common
        )
    if task in ("squad", "squadv2"):
        given = (doc_stride, max_query_length, max_answer_length)
        qa = {k: _setting(v, settings, k, QA_DEFAULTS[k]) for k, v in zip(QA_DEFAULTS, given)}
        return export_lib.export_question_answering(model, vocab, export_dir, **qa, **common)
    return export_lib.export_sequence_classifier(model, vocab, labels, export_dir, **common)
