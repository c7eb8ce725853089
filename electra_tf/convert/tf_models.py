"""tf-models-official / TF Hub `BertEncoder` checkpoints -> Bundle (discriminator encoder).

The checkpoint is object-based (tf.train.Checkpoint of a tf_keras model, or
a SavedModel's variables/): variables are found through the object graph by
the encoder's attribute names (`_embedding_layer`, `_transformer_layers/i/
_attention_layer/_query_dense`, ...), with the functional model's
`layer_with_weights-N` order (word, position, type embeddings, norm,
projection) for those only reachable that way. Attention kernels
[H, heads, head_size] are flattened to the original [H, H] dense layout.

BertEncoder's default inner activation is tanh-approximated GELU; ELECTRA
uses exact GELU, so a model trained with the default differs slightly.
"""

import os
import re

import numpy as np
import tensorflow as tf

from electra_tf.convert import layout
from electra_tf.convert.report import ConversionError, MismatchReport
from electra_tf.model.config import ElectraConfig


def _object_paths(reader):
    """checkpoint key -> every object-graph path that reaches it."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    paths = {}
    expanded = {}
    queue = [(0, "")]
    while queue:
        node_id, prefix = queue.pop(0)
        node = graph.nodes[node_id]
        for attribute in node.attributes:
            paths.setdefault(attribute.checkpoint_key, []).append(prefix)
        # Objects are reachable along many paths; a few per object are enough.
        expanded[node_id] = expanded.get(node_id, 0) + 1
        if expanded[node_id] > 6 or prefix.count("/") > 12:
            continue
        for child in node.children:
            queue.append((child.node_id, f"{prefix}/{child.local_name}"))
    return paths


def _resolve(path: str):
    if os.path.isdir(path):
        saved_model_vars = os.path.join(path, "variables", "variables")
        if os.path.exists(saved_model_vars + ".index"):
            return saved_model_vars
        latest = tf.train.latest_checkpoint(path)
        if latest:
            return latest
        raise ConversionError(f"No checkpoint or SavedModel in {path}")
    if not os.path.exists(path + ".index"):
        raise ConversionError(f"No TF checkpoint at {path}")
    return path


_QUERY_KERNEL = "_transformer_layers/0/_attention_layer/_query_dense/kernel"


def read(
    path: str, num_attention_heads: int | None = None, vocab_size: int | None = None
) -> layout.Bundle:
    reader = tf.train.load_checkpoint(_resolve(path))
    by_path = {}
    for key, prefixes in _object_paths(reader).items():
        for p in prefixes:
            by_path[p.lstrip("/")] = key
    prefix = _encoder_prefix(by_path, path)

    def get(rel):
        key = by_path.get(prefix + rel)
        return None if key is None else reader.get_tensor(key)

    report = MismatchReport(path, "an ELECTRA encoder")
    weights = _embedding_weights(get, reader, by_path, prefix, report)
    layers = 0
    while get(f"_transformer_layers/{layers}/_attention_layer/_query_dense/kernel") is not None:
        layers += 1
    q = get(_QUERY_KERNEL)
    hidden, heads = int(q.shape[0]), int(q.shape[1])
    if num_attention_heads and num_attention_heads != heads:
        report.value("num_attention_heads", num_attention_heads, heads, "differs")
    word = weights["electra/embeddings/word_embeddings"]
    config = ElectraConfig(
        vocab_size=int(word.shape[0]),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=int(get("_transformer_layers/0/_intermediate_dense/kernel").shape[1]),
        embedding_size=None if word.shape[1] == hidden else int(word.shape[1]),
        max_position_embeddings=int(weights["electra/embeddings/position_embeddings"].shape[0]),
        type_vocab_size=int(weights["electra/embeddings/token_type_embeddings"].shape[0]),
    )
    for i in range(layers):
        weights.update(_layer_weights(get, i, hidden))
    for name in sorted(n for n, v in weights.items() if v is None):
        report.missing(name, None)
    report.raise_if_any()
    bundle = layout.Bundle(
        weights={k: np.asarray(v, np.float32) for k, v in weights.items()}, discriminator=config
    )
    layout.validate(bundle, path, "an ELECTRA encoder", vocab_size=vocab_size)
    return bundle


def _encoder_prefix(by_path, path):
    """The encoder's object path: where its first transformer layer's query lives."""
    query = [p for p in by_path if re.search(r"(^|/)" + re.escape(_QUERY_KERNEL) + "$", p)]
    if not query:
        raise ConversionError(
            f"{path} does not look like a BertEncoder checkpoint: no {_QUERY_KERNEL}"
        )
    return min(query, key=len)[: -len(_QUERY_KERNEL)]


def _embedding_weights(get, reader, by_path, prefix, report):
    """Our embedding weights (raises, via `report`, when a table or the LayerNorm is missing)."""
    word = get("_embedding_layer/embeddings")
    position = get("_position_embedding_layer/_position_embeddings")
    token_type = get("_type_embedding_layer/embeddings")
    norm_gamma = get("_embedding_norm_layer/gamma")
    norm_beta = get("_embedding_norm_layer/beta")
    proj_kernel = get("_embedding_projection/kernel")
    proj_bias = get("_embedding_projection/bias")
    if position is None or token_type is None or (proj_kernel is None and word is not None):
        found = _functional_embeddings(reader, by_path, prefix, word)
        if found is not None:
            word = found["word"] if word is None else word
            position = found["position"] if position is None else position
            token_type = found["token_type"] if token_type is None else token_type
            if proj_kernel is None and "projection" in found:
                proj_kernel, proj_bias = found["projection"]
    for name, value in (
        ("word embeddings", word),
        ("position embeddings", position),
        ("type embeddings", token_type),
        ("embedding LayerNorm gamma", norm_gamma),
        ("embedding LayerNorm beta", norm_beta),
    ):
        if value is None:
            report.missing(name, None)
    report.raise_if_any()
    weights = {
        "electra/embeddings/word_embeddings": word,
        "electra/embeddings/position_embeddings": position,
        "electra/embeddings/token_type_embeddings": token_type,
        "electra/embeddings/LayerNorm/gamma": norm_gamma,
        "electra/embeddings/LayerNorm/beta": norm_beta,
    }
    if proj_kernel is not None:
        weights["electra/embeddings_project/kernel"] = proj_kernel
        weights["electra/embeddings_project/bias"] = proj_bias
    return weights


def _functional_embeddings(reader, by_path, prefix, word):
    """A functional BertEncoder's embeddings, only reachable as layer_with_weights-N: the first
    three single-table layers (word, position, type) and the projection after the first
    LayerNorm, when it maps the word width to another.  None when fewer than three tables."""
    indexed = {}
    for p, key in by_path.items():
        m = re.fullmatch(re.escape(prefix) + r"layer_with_weights-(\d+)/(\w+)", p)
        if m:
            indexed.setdefault(int(m.group(1)), {})[m.group(2)] = key
    emb = sorted(n for n, v in indexed.items() if set(v) == {"embeddings"})
    if len(emb) < 3:
        return None
    found = {
        name: reader.get_tensor(indexed[index]["embeddings"])
        for name, index in zip(("word", "position", "token_type"), emb)
    }
    word = found["word"] if word is None else word
    norm_index = [n for n, v in indexed.items() if set(v) == {"gamma", "beta"}]
    first_norm = min(norm_index) if norm_index else None
    if (
        first_norm is not None
        and first_norm + 1 in indexed
        and set(indexed[first_norm + 1]) == {"kernel", "bias"}
    ):
        k = reader.get_tensor(indexed[first_norm + 1]["kernel"])
        if k.ndim == 2 and k.shape[0] == word.shape[1] and k.shape[1] != k.shape[0]:
            found["projection"] = (k, reader.get_tensor(indexed[first_norm + 1]["bias"]))
    return found


def _layer_weights(get, i, hidden):
    """Our weights of transformer layer `i` (None where the checkpoint lacks one)."""
    src = f"_transformer_layers/{i}/"
    dst = f"electra/encoder/layer_{i}/"
    weights = {}
    for theirs, ours in (
        ("_query_dense", "attention/self/query"),
        ("_key_dense", "attention/self/key"),
        ("_value_dense", "attention/self/value"),
    ):
        k = get(f"{src}_attention_layer/{theirs}/kernel")
        b = get(f"{src}_attention_layer/{theirs}/bias")
        weights[dst + ours + "/kernel"] = None if k is None else k.reshape(hidden, -1)
        weights[dst + ours + "/bias"] = None if b is None else b.reshape(-1)
    k = get(f"{src}_attention_layer/_output_dense/kernel")
    weights[dst + "attention/output/dense/kernel"] = None if k is None else k.reshape(-1, hidden)
    weights[dst + "attention/output/dense/bias"] = get(f"{src}_attention_layer/_output_dense/bias")
    for theirs, ours in (
        ("_attention_layer_norm", "attention/output/LayerNorm"),
        ("_output_layer_norm", "output/LayerNorm"),
    ):
        weights[dst + ours + "/gamma"] = get(f"{src}{theirs}/gamma")
        weights[dst + ours + "/beta"] = get(f"{src}{theirs}/beta")
    for theirs, ours in (
        ("_intermediate_dense", "intermediate/dense"),
        ("_output_dense", "output/dense"),
    ):
        weights[dst + ours + "/kernel"] = get(f"{src}{theirs}/kernel")
        weights[dst + ours + "/bias"] = get(f"{src}{theirs}/bias")
    return weights
