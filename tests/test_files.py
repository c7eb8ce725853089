"""electra_tf.files: atomic writes, copies onto the same file, folder swaps, output checks."""

import json
import os

import pytest

from electra_tf import files


def _leftovers(directory):
    return sorted(name for name in os.listdir(directory) if ".tmp-" in name)


def test_write_json_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("old")
    files.write_json(str(path), {"a": 1}, indent=2)
    assert json.loads(path.read_text()) == {"a": 1} and path.read_text().endswith("}\n")
    files.write_text(str(path), "é\n")
    assert path.read_text(encoding="utf-8") == "é\n"
    assert _leftovers(tmp_path) == []


def test_a_write_that_fails_midway_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"kept": true}\n')
    # The file is open when the write fails: written in place, it would now be empty.
    with pytest.raises(TypeError):
        files.write_bytes(str(path), object())
    assert path.read_text() == '{"kept": true}\n'
    assert _leftovers(tmp_path) == []


def test_same_file_sees_through_links_and_dots(tmp_path):
    target = tmp_path / "vocab.txt"
    target.write_text("[PAD]\n")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    (tmp_path / "sub").mkdir()
    assert files.same_file(str(link), str(target))
    assert files.same_file(str(tmp_path / "sub" / ".." / "vocab.txt"), str(target))
    assert not files.same_file(str(target), str(tmp_path / "other.txt"))
    assert files.same_file("gs://b/x/vocab.txt", "gs://b/x/vocab.txt")
    assert not files.same_file("gs://b/x/vocab.txt", "gs://b/y/vocab.txt")


def test_copying_a_file_onto_itself_leaves_it_untouched(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n")
    link = tmp_path / "link.txt"
    link.symlink_to(path)
    # A hard link keeps the original file: a no-op leaves `path` naming it, while a copy
    # renamed over `path` would not.
    original = tmp_path / "original.txt"
    os.link(path, original)
    for source in (path, link):
        files.copy_file(str(source), str(path))
        assert os.path.samefile(path, original) and path.read_text() == "[PAD]\n[UNK]\n"
    files.copy_file(str(path), str(tmp_path / "copy.txt"))
    assert (tmp_path / "copy.txt").read_text() == "[PAD]\n[UNK]\n"
    assert _leftovers(tmp_path) == []


def test_replace_dir_swaps_a_complete_folder_in(tmp_path):
    directory = tmp_path / "discriminator"
    directory.mkdir()
    (directory / "old.txt").write_text("old")
    staging = files.temporary_dir_beside(str(directory))
    assert os.path.dirname(staging) == str(tmp_path) and os.path.isdir(staging)
    (tmp_path / staging / "new.txt").write_text("new")
    files.replace_dir(staging, str(directory))
    assert sorted(os.listdir(directory)) == ["new.txt"]
    assert _leftovers(tmp_path) == []
    fresh = files.temporary_dir_beside(str(tmp_path / "fresh"))
    files.replace_dir(fresh, str(tmp_path / "fresh"))
    assert os.listdir(tmp_path / "fresh") == []


def test_check_output_dir_refuses_a_non_empty_folder_unless_asked(tmp_path):
    files.check_output_dir(str(tmp_path / "missing"), "--output_dir", overwrite=False)
    files.check_output_dir(str(tmp_path), "--output_dir", overwrite=False)
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(
        files.OutputExistsError, match=r"--output_dir=.*\(results\.json\).*--overwrite"
    ):
        files.check_output_dir(str(tmp_path), "--output_dir", overwrite=False)
    files.check_output_dir(str(tmp_path), "--output_dir", overwrite=True)
    files.check_output_dir(str(tmp_path), "--output_dir", False, is_resumable=lambda d: True)
    assert (tmp_path / "results.json").read_text() == "{}"
