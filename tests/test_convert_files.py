"""convert's file handling: vocab copies onto themselves keep the vocab, outputs are refused
when non-empty unless --overwrite, valid sharded HF folders still read, and writes leave no
temporary files behind."""

import json
import os
import shutil

import numpy as np
import pytest

from electra_tf.convert import hf, native, original
from electra_tf.convert.__main__ import main as convert_main
from electra_tf.data import tokenization
from electra_tf.model.config import ElectraConfig
from electra_tf.model.encoder import ElectraEncoder

TINY = ElectraConfig(
    vocab_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("encoder")
    encoder = ElectraEncoder(TINY)
    encoder(encoder.dummy_inputs())
    encoder.save_pretrained(str(folder))
    (folder / "vocab.txt").write_text("\n".join([*tokenization.SPECIAL_TOKENS, "a", "b", "c"]))
    return folder


def test_vocab_copied_onto_itself_is_kept(encoder_dir, tmp_path):
    folder = shutil.copytree(encoder_dir, tmp_path / "encoder")
    vocab = folder / "vocab.txt"
    before = vocab.read_bytes()
    native.write_encoder_dir(native.read_encoder_dir(str(folder)), str(folder), str(vocab))
    assert vocab.read_bytes() == before


def test_hf_write_in_place_keeps_the_vocab_and_leaves_no_temporary(encoder_dir, tmp_path):
    bundle = native.read_encoder_dir(str(encoder_dir))
    folder = tmp_path / "hf"
    hf.write(bundle, str(folder), "model", str(encoder_dir / "vocab.txt"))
    vocab = folder / "vocab.txt"
    before = vocab.read_bytes()
    hf.write(bundle, str(folder), "model", str(vocab))
    assert vocab.read_bytes() == before
    assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors", "vocab.txt"]


def test_original_write_leaves_only_the_checkpoint(encoder_dir, tmp_path):
    prefix = str(tmp_path / "model.ckpt")
    original.write(native.read_encoder_dir(str(encoder_dir)), prefix)
    original.write(native.read_encoder_dir(str(encoder_dir)), prefix)
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt.data-00000-of-00001", "model.ckpt.index"]


def test_output_dir_not_empty_is_refused_unless_overwrite(encoder_dir, tmp_path, capsys):
    hf_dir = tmp_path / "hf"
    assert convert_main(["to-hf", f"--encoder_dir={encoder_dir}", f"--output_dir={hf_dir}"]) == 0
    again = ["to-hf", f"--encoder_dir={encoder_dir}", f"--output_dir={hf_dir}"]
    assert convert_main(again) == 2
    assert f"--output_dir={hf_dir} is not empty" in capsys.readouterr().err
    assert convert_main([*again, "--overwrite"]) == 0


def test_output_prefix_existing_is_refused_unless_overwrite(encoder_dir, tmp_path, capsys):
    args = ["to-original", f"--encoder_dir={encoder_dir}", f"--output={tmp_path}/model.ckpt"]
    assert convert_main(args) == 0
    assert convert_main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert convert_main([*args, "--overwrite"]) == 0


def test_sharded_index_inside_the_folder_reads(encoder_dir, tmp_path):
    folder = tmp_path / "hf"
    bundle = native.read_encoder_dir(str(encoder_dir))
    hf.write(bundle, str(folder), "model")
    whole = hf.load_state_dict(str(folder))
    (folder / "shards").mkdir()
    os.rename(folder / "model.safetensors", folder / "shards" / "part-1.safetensors")
    weight_map = {name: "shards/part-1.safetensors" for name in whole}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    sharded = hf.load_state_dict(str(folder))
    assert sorted(sharded) == sorted(whole)
    for name, value in whole.items():
        np.testing.assert_array_equal(sharded[name], value)
