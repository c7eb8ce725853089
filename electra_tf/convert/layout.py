"""The interchange format of all conversions: weights under the original TF1 names.

Every reader produces a `Bundle` (numpy arrays keyed by the names
google-research/electra creates, e.g.
`electra/encoder/layer_0/attention/self/query/kernel`, plus the optimizer's
`<name>/adam_m`, `<name>/adam_v` and `global_step`); every writer consumes one.
`expected_shapes` lists those names and shapes from the configs following the
original modeling rules, so a checkpoint is validated against it before
anything is written.
"""

import dataclasses

import numpy as np

from electra_tf.convert.report import ConversionError, MismatchReport
from electra_tf.model.config import ElectraConfig

GLOBAL_STEP = "global_step"
SLOT_SUFFIXES = ("adam_m", "adam_v")
# Our token-classification head (the original has no single name for it).
TOKEN_HEAD = "task_specific/dense"


@dataclasses.dataclass
class Bundle:
    weights: dict[str, np.ndarray]
    discriminator: ElectraConfig
    generator: ElectraConfig | None = None
    untied_generator_embeddings: bool = False
    num_labels: int | None = None
    id2label: dict[int, str] | None = None
    has_discriminator_head: bool = False

    @property
    def global_step(self) -> int | None:
        value = self.weights.get(GLOBAL_STEP)
        return None if value is None else int(np.asarray(value))

    def model_weights(self) -> dict[str, np.ndarray]:
        return {
            k: v
            for k, v in self.weights.items()
            if k != GLOBAL_STEP and k.rsplit("/", 1)[-1] not in SLOT_SUFFIXES
        }

    def slots(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in self.weights.items() if k.rsplit("/", 1)[-1] in SLOT_SUFFIXES}


def _dense(out, scope, n_in, n_out):
    out[f"{scope}/kernel"] = (n_in, n_out)
    out[f"{scope}/bias"] = (n_out,)


def _layer_norm(out, scope, n):
    out[f"{scope}/gamma"] = (n,)
    out[f"{scope}/beta"] = (n,)


def encoder_shapes(config: ElectraConfig, scope: str, embeddings_scope: str | None) -> dict:
    """Names/shapes of one `BertModel` built under `scope` (modeling.py's rules).

    `embeddings_scope` is where its embedding block lives ("electra" when the
    generator shares the discriminator's), or None to leave the block out.
    """
    c, out = config, {}
    e, h, i = c.embedding_dim, c.hidden_size, c.intermediate_size
    if embeddings_scope is not None:
        base = f"{embeddings_scope}/embeddings"
        out[f"{base}/word_embeddings"] = (c.vocab_size, e)
        out[f"{base}/token_type_embeddings"] = (c.type_vocab_size, e)
        out[f"{base}/position_embeddings"] = (c.max_position_embeddings, e)
        _layer_norm(out, f"{base}/LayerNorm", e)
    if e != h:
        _dense(out, f"{scope}/embeddings_project", e, h)
    for n in range(c.num_hidden_layers):
        base = f"{scope}/encoder/layer_{n}"
        for name in ("query", "key", "value"):
            _dense(out, f"{base}/attention/self/{name}", h, h)
        _dense(out, f"{base}/attention/output/dense", h, h)
        _layer_norm(out, f"{base}/attention/output/LayerNorm", h)
        _dense(out, f"{base}/intermediate/dense", h, i)
        _dense(out, f"{base}/output/dense", i, h)
        _layer_norm(out, f"{base}/output/LayerNorm", h)
    return out


def expected_shapes(bundle: Bundle, discriminator_head=None) -> dict:
    """Every model variable the bundle's configs imply, by original name."""
    d, g = bundle.discriminator, bundle.generator
    out = encoder_shapes(d, "electra", "electra")
    if discriminator_head is None:
        discriminator_head = bundle.has_discriminator_head or g is not None
    if g is not None:
        untied = bundle.untied_generator_embeddings
        out.update(encoder_shapes(g, "generator", "generator" if untied else None))
        table = g.embedding_dim if untied else d.embedding_dim
        _dense(out, "generator_predictions/dense", g.hidden_size, table)
        _layer_norm(out, "generator_predictions/LayerNorm", table)
        out["generator_predictions/output_bias"] = (g.vocab_size,)
    if discriminator_head:
        _dense(out, "discriminator_predictions/dense", d.hidden_size, d.hidden_size)
        _dense(out, "discriminator_predictions/dense_1", d.hidden_size, 1)
    if bundle.num_labels is not None:
        _dense(out, TOKEN_HEAD, d.hidden_size, bundle.num_labels)
    return out


def validate(
    bundle: Bundle,
    source: str,
    target: str,
    vocab_size: int | None = None,
    discriminator_head=None,
    allow_unexpected=False,
) -> None:
    """Raises one ConversionError listing every missing/extra/misshapen variable."""
    report = MismatchReport(source, target)
    expected = expected_shapes(bundle, discriminator_head)
    found = {k: tuple(v.shape) for k, v in bundle.model_weights().items()}
    report.compare(expected, found, allow_unexpected=allow_unexpected)
    if vocab_size is not None and vocab_size != bundle.discriminator.vocab_size:
        report.value(
            "vocab_size (vocabulary file vs model)",
            vocab_size,
            bundle.discriminator.vocab_size,
            "vocabulary size differs",
        )
    for name, slot in bundle.slots().items():
        var = name.rsplit("/", 1)[0]
        if var not in expected:
            if not allow_unexpected:
                report.unexpected(name, slot.shape)
        elif tuple(slot.shape) != tuple(expected[var]):
            report.shape(name, expected[var], slot.shape)
    if report:
        g = bundle.generator
        if g is not None and any(
            r[0].startswith("generator") and r[3] == "shape differs" for r in report.rows
        ):
            report.note(
                f"The expected generator has hidden_size {g.hidden_size}, "
                f"{g.num_hidden_layers} layer(s), intermediate_size {g.intermediate_size}: check "
                "--generator_hidden_size / --generator_layers (fractions of the discriminator) "
                "or the generator config you passed; a common case is a generator of the "
                "discriminator's full width (e.g. 256) expected at 1/4 width (64), or the reverse."
            )
    report.raise_if_any()


def check_config_matches(
    expected: ElectraConfig, found: ElectraConfig, what: str, report: MismatchReport
) -> None:
    for field in (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "embedding_dim",
        "max_position_embeddings",
        "type_vocab_size",
    ):
        a, b = getattr(expected, field), getattr(found, field)
        if a != b:
            report.value(f"{what}.{field}", a, b, "config differs")


def infer_encoder_config(
    shapes: dict,
    scope: str,
    embeddings_scope: str,
    num_attention_heads: int | None = None,
    **extra,
) -> ElectraConfig:
    """An ElectraConfig from the shapes of one encoder's variables (original names)."""
    word = shapes.get(f"{embeddings_scope}/embeddings/word_embeddings")
    query = shapes.get(f"{scope}/encoder/layer_0/attention/self/query/kernel")
    inter = shapes.get(f"{scope}/encoder/layer_0/intermediate/dense/kernel")
    missing = [
        n
        for n, s in (
            (f"{embeddings_scope}/embeddings/word_embeddings", word),
            (f"{scope}/encoder/layer_0/attention/self/query/kernel", query),
            (f"{scope}/encoder/layer_0/intermediate/dense/kernel", inter),
        )
        if s is None
    ]
    if missing:
        raise ConversionError(
            f"Cannot infer the {scope!r} encoder's config: the checkpoint lacks {missing} "
            f"(it holds {len(shapes)} variables, e.g. {sorted(shapes)[:5]})."
        )
    layers = 0
    while f"{scope}/encoder/layer_{layers}/attention/self/query/kernel" in shapes:
        layers += 1
    hidden = int(query[1])
    vocab, emb = int(word[0]), int(word[1])
    heads = num_attention_heads or max(1, hidden // 64)
    base = f"{embeddings_scope}/embeddings"
    values = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=int(inter[1]),
        embedding_size=None if emb == hidden else emb,
        max_position_embeddings=int(shapes.get(f"{base}/position_embeddings", (512,))[0]),
        type_vocab_size=int(shapes.get(f"{base}/token_type_embeddings", (2,))[0]),
    )
    values.update(extra)
    try:
        return ElectraConfig(**values)
    except ValueError as e:
        raise ConversionError(
            f"The {scope!r} encoder's inferred config is invalid: {e}. "
            "Pass its number of attention heads explicitly."
        ) from e
