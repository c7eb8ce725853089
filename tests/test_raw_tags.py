"""Raw span tags (--label_encoding=none) accept the evaluation labels BIOES does."""

import pytest

from electra_tf.data import tokenization
from electra_tf.finetuning import tasks
from electra_tf.finetuning.settings import FinetuningSettings


def _blocks(path):
    return path.read_text(encoding="utf-8").strip("\n").split("\n\n")


@pytest.fixture(scope="module")
def lst_data(shared_data, tmp_path_factory):
    """A CoNLL-2000 cut whose training file has B-LST only and whose test file has I-LST."""
    source = shared_data / "conll2000_chunking"
    out = tmp_path_factory.mktemp("lst")
    train = _blocks(source / "train.txt")
    train = train[:40] + [b for b in train[40:] if "B-LST" in b]
    test = _blocks(source / "test.txt")
    test = test[:10] + [b for b in test[10:] if "I-LST" in b]
    assert not any("I-LST" in b for b in train) and any("I-LST" in b for b in test)
    (out / "train.txt").write_text("\n\n".join(train) + "\n\n", encoding="utf-8")
    (out / "test.txt").write_text("\n\n".join(test) + "\n\n", encoding="utf-8")
    words = sorted({row.split()[0].lower() for b in train + test for row in b.split("\n")})
    vocab = out / "vocab.txt"
    vocab.write_text("\n".join([*tokenization.SPECIAL_TOKENS, *words]) + "\n", encoding="utf-8")
    return out, tokenization.FullTokenizer(str(vocab), do_lower_case=True)


@pytest.mark.parametrize("label_encoding", ["none", "BIOES"])
def test_test_file_with_a_tag_training_lacks_is_scored(lst_data, label_encoding):
    data_dir, tokenizer = lst_data
    settings = FinetuningSettings(
        task_name="chunk",
        data_dir=str(data_dir),
        max_seq_length=64,
        label_encoding=label_encoding,
        # Required settings that reading the data never opens.
        init_checkpoint="discriminator",
        model_dir="runs/chunk",
    )
    task = tasks.load_task(settings, tokenizer)
    prefixes = "BI" if label_encoding == "none" else "BIES"
    assert {f"{p}-LST" for p in prefixes} <= set(task.labels)
    assert len(task.labels) == 1 + len(prefixes) * len({label[2:] for label in task.labels[1:]})
    # Predicting every word's gold tag scores 1.0: the I-LST span is read and encoded.
    gold_ids = task.dev.arrays["label_ids"]
    logits = (gold_ids[..., None] == range(len(task.labels))).astype("float32")
    assert task.dev.score(logits)["entity_f1"] == 1.0
