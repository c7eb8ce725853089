"""Entities from an exported NER model, locally: no server, the server's own signature.

    python -m electra_tf.predict --model=export/models/ner --input=texts.txt --output=entities.jsonl
    python -m electra_tf.predict --model=export/models/ner/3 --input=docs.jsonl --text_field=body \
        --output_format=conll --output=entities.conll

--model is an `export_saved_model --export_dir` (its highest version is used,
as TF Serving does) or one version folder.  The texts go through the export's
``serving_default`` signature, the one TF Serving runs, so the entities are
exactly what the deployed model will return.

Input (--input, default stdin): one text per line (--input_format=lines), or
JSON Lines with the text in --text_field (--input_format=jsonl; the default
"auto" picks jsonl for *.jsonl / *.ndjson files).  A line that is not UTF-8,
not a JSON object or lacks the text field stops the run with an error naming
the file and line.  Blank lines are texts in the lines format (their output
has no words, so output lines stay aligned with input lines) and are skipped
in JSON Lines.

Output (--output, default stdout): --output_format=jsonl writes one object per
text, ``{"line", "text", "words", "entities"}`` as `electra_tf.serving.client --json`
prints them (character offsets, end exclusive); conll writes one
``word<TAB>label`` line per word and a blank line after each text (texts
without words write nothing).  Texts are sent --batch_size at a time; progress
is logged every --progress_seconds.
"""

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence

import tensorflow as tf
from absl import app, flags, logging

from electra_tf.files import same_file
from electra_tf.serving import client

SERVING_SIGNATURE = client.SIGNATURE
INPUT_KEY = client.INPUT_KEY
JSONL_SUFFIXES = (".jsonl", ".ndjson")

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "model",
    None,
    "An export_saved_model --export_dir (its highest version is "
    "used) or one of its version folders.",
)
flags.DEFINE_string("input", "-", "Texts to tag; - reads stdin.")
flags.DEFINE_string("output", "-", "Where to write the entities; - writes stdout.")
flags.DEFINE_enum(
    "input_format",
    "auto",
    ["auto", "lines", "jsonl"],
    "lines: one text per line; jsonl: one JSON object per line with the text in "
    "--text_field; auto: jsonl for *.jsonl / *.ndjson, else lines.",
)
flags.DEFINE_string("text_field", "text", "JSON Lines input: the field that holds the text.")
flags.DEFINE_enum(
    "output_format",
    "jsonl",
    ["jsonl", "conll"],
    "jsonl: one object per text with words and entities; conll: word<TAB>label "
    "lines, a blank line after each text.",
)
flags.DEFINE_integer("batch_size", 32, "Texts per call of the signature.")
flags.DEFINE_integer(
    "num_threads", 0, "TensorFlow intra-op threads (0: TensorFlow's default, all cores)."
)
flags.DEFINE_float("progress_seconds", 10.0, "Log progress at most this often.")


class PredictError(ValueError):
    """Bad --model or input; the message names the file (and line) and the fix."""


def resolve_version_dir(path: str) -> str:
    """`path` if it holds saved_model.pb, else its highest numeric version folder that does."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise PredictError(
            f"--model={path}: no such directory; pass an export_saved_model "
            "--export_dir or one of its version folders"
        )
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = sorted(
        (
            int(name)
            for name in os.listdir(path)
            if name.isdigit() and os.path.isfile(os.path.join(path, name, "saved_model.pb"))
        ),
        reverse=True,
    )
    if not versions:
        raise PredictError(
            f"--model={path} holds neither saved_model.pb nor a numeric version "
            "folder with one; pass an export_saved_model --export_dir or one of "
            "its version folders (export with python -m "
            "electra_tf.export_saved_model)"
        )
    return os.path.join(path, str(versions[0]))


class Predictor:
    """texts -> [{"words": [...], "entities": [...]}] through the export's serving_default."""

    def __init__(self, model: str):
        self.version_dir = resolve_version_dir(model)
        try:
            loaded = tf.saved_model.load(self.version_dir)
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise PredictError(f"{self.version_dir}: not a loadable SavedModel: {e}") from None
        if SERVING_SIGNATURE not in loaded.signatures:
            raise PredictError(
                f"{self.version_dir}: no {SERVING_SIGNATURE!r} signature (has "
                f"{sorted(loaded.signatures)}); export it with python -m "
                "electra_tf.export_saved_model"
            )
        self._signature = loaded.signatures[SERVING_SIGNATURE]
        self._loaded = loaded  # the signature's variables live as long as this object
        inputs = self._signature.structured_input_signature[1]
        outputs = self._signature.structured_outputs
        if set(inputs) != {INPUT_KEY} or "num_entities" not in outputs:
            raise PredictError(
                f"{self.version_dir}: not a token-classification (NER) export: its "
                f"{SERVING_SIGNATURE} takes {sorted(inputs)} and returns {sorted(outputs)}; "
                "export one with python -m electra_tf.export_saved_model "
                "--task=token_classification"
            )

    def __call__(self, texts: Sequence[str]) -> list[dict]:
        """The export's words and entities for each text.

        Raises PredictError when the export refuses the request (over its limits).
        """
        if not texts:
            return []
        try:
            outputs = self._signature(
                **{INPUT_KEY: tf.constant([t.encode("utf-8") for t in texts], tf.string)}
            )
        except tf.errors.InvalidArgumentError as e:
            reason = e.message.rsplit("assertion failed: [", 1)[-1].split("]")[0]
            raise PredictError(f"{self.version_dir} refused {len(texts)} texts: {reason}") from None
        return client.parse_predict_response(
            {"outputs": {name: value.numpy() for name, value in outputs.items()}}
        )


def read_texts(
    stream, name: str, input_format: str, text_field: str = "text"
) -> Iterator[tuple[int, str, int]]:
    """(line number, text, bytes read so far) per text of a binary stream."""
    consumed = 0
    for number, raw in enumerate(stream, start=1):
        consumed += len(raw)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise PredictError(
                f"{name}:{number}: not UTF-8 ({e.reason} at byte {e.start} of "
                "the line); convert the file to UTF-8"
            ) from None
        line = line[:-1] if line.endswith("\n") else line
        line = line[:-1] if line.endswith("\r") else line
        if input_format == "lines":
            yield number, line, consumed
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise PredictError(
                f"{name}:{number}: not JSON ({e.msg} at column {e.colno}); "
                "JSON Lines input needs one object per line, or pass "
                "--input_format=lines for plain text"
            ) from None
        if not isinstance(record, dict):
            raise PredictError(
                f"{name}:{number}: a JSON {type(record).__name__}, not an object "
                f"with a {text_field!r} field"
            )
        if text_field not in record:
            raise PredictError(
                f"{name}:{number}: no {text_field!r} field (fields: "
                f"{sorted(record)}); pass --text_field=<the text's field>"
            )
        if not isinstance(record[text_field], str):
            raise PredictError(
                f"{name}:{number}: field {text_field!r} is a JSON "
                f"{type(record[text_field]).__name__}, not a string"
            )
        yield number, record[text_field], consumed


def format_result(output_format: str, line: int, text: str, result: dict) -> str:
    if output_format == "jsonl":
        return json.dumps({"line": line, "text": text, **result}, ensure_ascii=False) + "\n"
    if not result["words"]:
        return ""
    return "".join(f"{w['token']}\t{w['label']}\n" for w in result["words"]) + "\n"


def input_format_for(path: str, input_format: str) -> str:
    if input_format != "auto":
        return input_format
    return "jsonl" if path.lower().endswith(JSONL_SUFFIXES) else "lines"


class Progress:
    """Logs texts done (and the share of the input file read) at most every `seconds`."""

    def __init__(self, seconds: float, total_bytes: int | None):
        self.seconds, self.total_bytes = seconds, total_bytes
        self.start = self.last = time.monotonic()

    def update(self, texts: int, entities: int, consumed: int):
        now = time.monotonic()
        if now - self.last < self.seconds:
            return
        self.last = now
        share = (
            f" ({100 * consumed / self.total_bytes:.1f}% of the input)" if self.total_bytes else ""
        )
        logging.info(
            "%d texts%s, %d entities, %.1f texts/s",
            texts,
            share,
            entities,
            texts / (now - self.start),
        )


def run(
    predictor: Predictor,
    source,
    name: str,
    sink,
    input_format: str,
    text_field: str,
    output_format: str,
    batch_size: int,
    progress: Progress,
) -> tuple[int, int]:
    """Tags every text of `source` (binary) into `sink` (text); returns (texts, entities)."""
    texts = entities = 0
    batch = []

    def flush(consumed):
        nonlocal texts, entities
        try:
            results = predictor([text for _, text in batch])
        except PredictError as e:
            raise PredictError(
                f"{name}:{batch[0][0]}-{batch[-1][0]}: {e} (lower --batch_size, or split the "
                "long texts)"
            ) from None
        sink.write(
            "".join(
                format_result(output_format, line, text, result)
                for (line, text), result in zip(batch, results)
            )
        )
        texts += len(batch)
        entities += sum(len(r["entities"]) for r in results)
        batch.clear()
        progress.update(texts, entities, consumed)

    consumed = 0
    for line, text, consumed in read_texts(source, name, input_format, text_field):
        batch.append((line, text))
        if len(batch) == batch_size:
            flush(consumed)
    if batch:
        flush(consumed)
    return texts, entities


def validate_flags():
    if not FLAGS.model:
        raise app.UsageError(
            "--model is required: an export_saved_model --export_dir or one of its version folders"
        )
    if FLAGS.batch_size < 1:
        raise app.UsageError(f"--batch_size must be >= 1, got {FLAGS.batch_size}")
    if FLAGS.num_threads < 0:
        raise app.UsageError(f"--num_threads must be >= 0, got {FLAGS.num_threads}")
    if not FLAGS.text_field:
        raise app.UsageError("--text_field must not be empty")
    if FLAGS.input != "-" and not os.path.isfile(FLAGS.input):
        raise app.UsageError(f"--input={FLAGS.input}: no such file")
    if FLAGS.output != "-" and FLAGS.input != "-" and same_file(FLAGS.input, FLAGS.output):
        raise app.UsageError(
            f"--output={FLAGS.output} is the --input file; writing it would destroy the texts. "
            "Pass another --output"
        )
    if FLAGS.output != "-" and os.path.isdir(FLAGS.output):
        raise app.UsageError(f"--output={FLAGS.output} is a folder; pass a file name")
    if FLAGS.output != "-" and not os.path.isdir(os.path.dirname(os.path.abspath(FLAGS.output))):
        raise app.UsageError(
            f"--output={FLAGS.output}: its folder does not exist; create it or pass another path"
        )


class _TemporaryOutput:
    """A text file written under a temporary name beside `path`, renamed onto it when complete.

    A failed or interrupted run leaves an existing `path` as it was.
    """

    def __init__(self, path: str):
        directory, base = os.path.split(os.path.abspath(path))
        self.path = path
        self._file = tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=directory, prefix=f".{base}.tmp-", delete=False
        )

    def write(self, text: str):
        self._file.write(text)

    def finish(self, completed: bool):
        """Renames the file onto `path` when `completed`, else removes it."""
        self._file.close()
        if completed:
            os.replace(self._file.name, self.path)
        else:
            os.remove(self._file.name)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    validate_flags()
    if FLAGS.num_threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.num_threads)
    try:
        predictor = Predictor(FLAGS.model)
    except PredictError as e:
        logging.error("%s", e)
        return 1
    logging.info("Model: %s", predictor.version_dir)
    input_format = input_format_for(FLAGS.input, FLAGS.input_format)
    source = sys.stdin.buffer if FLAGS.input == "-" else open(FLAGS.input, "rb")
    sink = sys.stdout if FLAGS.output == "-" else _TemporaryOutput(FLAGS.output)
    name = "<stdin>" if FLAGS.input == "-" else FLAGS.input
    total = os.fstat(source.fileno()).st_size if FLAGS.input != "-" else None
    progress = Progress(FLAGS.progress_seconds, total)
    completed = False
    try:
        texts, entities = run(
            predictor,
            source,
            name,
            sink,
            input_format,
            FLAGS.text_field,
            FLAGS.output_format,
            FLAGS.batch_size,
            progress,
        )
        completed = True
    except (PredictError, OSError) as e:
        logging.error("%s", e)
        return 1
    finally:
        if source is not sys.stdin.buffer:
            source.close()
        if sink is sys.stdout:
            sink.flush()
        else:
            sink.finish(completed)
    seconds = time.monotonic() - progress.start
    logging.info(
        "Tagged %d texts (%d entities) in %.1f s, %.1f texts/s -> %s",
        texts,
        entities,
        seconds,
        texts / max(seconds, 1e-9),
        FLAGS.output,
    )
    return 0


if __name__ == "__main__":
    app.run(main)
