"""Request limits of an exported signature: checked on the raw input before any other work.

A request over a limit fails with tf.errors.InvalidArgumentError (HTTP 400 / gRPC
INVALID_ARGUMENT from TF Serving) whose message names the input, the limit and the value.
Only the number of texts and their byte lengths (tf.strings.length) are read to check them,
so a 10 MB text is refused in the time it takes to receive it.

The defaults keep one request of the 2-layer, hidden-128 token classifier under about 100 MB
of memory and 1 s on one CPU core (bench/serving_long_text.py; export/README.md says how they
were chosen and how to set them for a larger model).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from electra_tf.serving.common import ExportError

DEFAULT_MAX_TEXTS = 256
DEFAULT_MAX_TEXT_BYTES = 100_000
DEFAULT_MAX_REQUEST_BYTES = 1_000_000
DEFAULT_MAX_CONTEXT_BYTES = 100_000


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """What one request may hold; export_saved_model's --max_* flags.

    `max_texts`: texts (or question/context pairs) per request. `max_text_bytes`: UTF-8 bytes
    of one text (QA: of one question). `max_request_bytes`: texts x the longest text's bytes,
    the size of the [texts, longest] outputs the request is padded to. `max_context_bytes`
    (QA only): bytes of one context.
    """

    max_texts: int = DEFAULT_MAX_TEXTS
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_context_bytes: int = DEFAULT_MAX_CONTEXT_BYTES

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ExportError(
                    f"--{field.name} must be a positive integer, got {value!r}; "
                    f"the default is {field.default}"
                )

    def as_dict(self) -> dict:
        """The limits as export_info.json records them."""
        return dataclasses.asdict(self)


def _assert_at_most(value, limit, what, name, fix):
    """An assert op: `value` <= `limit`, else a message naming the limit, `what` and the value."""
    return tf.debugging.Assert(
        value <= limit,
        [
            tf.strings.format(
                f"{what} is {{}}, over the limit {name}={limit} of this export; {fix} "
                f"(or export with a higher --{name})",
                [value],
            )
        ],
        summarize=1,
    )


def check_texts(texts, limits: RequestLimits, input_name: str, max_bytes: int, bytes_flag: str):
    """`texts` itself, computed only after the request limits hold (else InvalidArgumentError).

    `max_bytes` / `bytes_flag`: the per-text byte limit and its flag name (max_text_bytes, or
    max_context_bytes for QA contexts).
    """
    count = tf.size(texts, out_type=tf.int64)
    lengths = tf.strings.length(texts, unit="BYTE")
    longest = tf.cast(tf.reduce_max(tf.concat([lengths, [0]], 0)), tf.int64)
    checks = [
        _assert_at_most(
            count,
            limits.max_texts,
            f"the number of {input_name}",
            "max_texts",
            "send fewer texts per request",
        ),
        _assert_at_most(
            longest,
            max_bytes,
            f"the longest of {input_name} in bytes",
            bytes_flag,
            "split the text",
        ),
        _assert_at_most(
            count * longest,
            limits.max_request_bytes,
            f"{input_name} x the longest one's bytes",
            "max_request_bytes",
            "send fewer or shorter texts per request",
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(texts)
