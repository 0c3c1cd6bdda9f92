"""Plot text to numbers: tokens, LIWC/Empath categories, VAD norms, word vectors, averaging."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from hvae_tf.features import text

LIWC_DIC = """%
1\tposemo
2\tnegemo
3\tsocial\t(Social processes)
%
happ*\t1
happen\t3
hap*\t2
sad\t2
friend*\t1\t3
like\t(02 134)1/3\t(02)2
kind of\t3
"""


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def test_tokenise_lowercases_and_keeps_joined_words():
    assert text.tokenise("Don\u2019t stop the in-law's CAR, 2 times!") == [
        "don't", "stop", "the", "in-law's", "car", "2", "times"]


def test_clean_text_drops_undecodable_characters_and_says_so():
    assert text.clean_text("a plain plot") == ("a plain plot", False)
    cleaned, bad = text.clean_text(b"caf\xe9 society")  # Latin-1 bytes, invalid UTF-8
    assert bad and "\ufffd" not in cleaned and text.tokenise(cleaned) == ["caf", "society"]
    cleaned, bad = text.clean_text("bad \udce9 byte")  # surrogate-escaped
    assert bad and text.tokenise(cleaned) == ["bad", "byte"]


def test_liwc_dic_exact_words_beat_prefixes_and_longest_prefix_wins(tmp_path):
    lexicon = text.read_liwc_dic(write(tmp_path, "mini.dic", LIWC_DIC))
    assert lexicon.categories == ["posemo", "negemo", "social"]
    assert lexicon.categories_of("happen") == (2,)  # exact entry, though happ* and hap* match
    assert lexicon.categories_of("happiness") == (0,)  # happ* is longer than hap*
    assert lexicon.categories_of("hapless") == (1,)
    assert lexicon.categories_of("friends") == (0, 2)
    assert lexicon.categories_of("dog") == ()
    assert lexicon.categories_of("like") == (2,)  # conditional field: its default, category 3
    assert lexicon.skipped_phrases == 1  # "kind of"


@pytest.mark.parametrize("broken, line, needle", [
    ("1\tposemo\n%\nhappy\t1\n", 1, "must start with a '%'"),
    ("%\n1\tposemo\n2\tnegemo\n", 3, "never closed"),
    ("%\nx\tposemo\n%\nhappy\t1\n", 2, "number<TAB>name"),
    ("%\n1\tposemo\n%\nhappy\t7\n", 4, "category 7"),
    ("%\n1\tposemo\n%\nhappy\tone\n", 4, "'one' is not a category number"),
    ("%\n1\tposemo\n%\nhappy\n", 4, "at least one category"),
])
def test_malformed_liwc_dic_names_file_and_line(tmp_path, broken, line, needle):
    path = write(tmp_path, "bad.dic", broken)
    with pytest.raises(ValueError, match=needle) as error:
        text.read_liwc_dic(path)
    assert f"{path}, line {line}:" in str(error.value)


def test_empath_categories_come_from_the_packaged_file():
    lexicon = text.empath_lexicon()
    import importlib.util
    tsv = Path(importlib.util.find_spec("empath").submodule_search_locations[0]) / "data" / "categories.tsv"
    rows = [line.split("\t") for line in tsv.read_text().splitlines() if line.strip()]
    assert lexicon.categories == [r[0] for r in rows]
    name, word = rows[0][0], next(w for w in rows[0][1:] if "_" not in w)
    assert lexicon.categories.index(name) in lexicon.categories_of(word)


def test_category_averages_count_every_token():
    lexicon = text.CategoryLexicon("liwc", ["pos", "neg"], {"good": (0,), "bad": (1,)}, {"nic": (0,)})
    counts, vocabulary = text.count_tokens([["good", "nice", "bad", "dog"], [], ["dog"]])
    means, used = text.average_rows(counts, lexicon.term_matrix(vocabulary))
    np.testing.assert_allclose(means, [[2 / 4, 1 / 4], [0, 0], [0, 0]])
    assert used.tolist() == [4, 0, 1]


def test_average_rows_over_known_words_sums_before_dividing():
    counts, vocabulary = text.count_tokens([["a", "b", "a", "zzz"]])
    known = np.asarray([vocabulary.index("a"), vocabulary.index("b")])
    rows = np.asarray([[1.0, 10.0], [4.0, 40.0]], dtype=np.float32)  # a, b
    means, used = text.average_rows(counts, rows, known)
    np.testing.assert_allclose(means, [[(1 + 1 + 4) / 3, (10 + 10 + 40) / 3]], rtol=1e-6)
    assert used.tolist() == [3]
    assert sp.issparse(counts)


def test_real_warriner_lexicon(shared_data):
    path = shared_data / "lexicons" / "Ratings_Warriner_et_al.csv"
    lexicon = text.read_vad_lexicon(path)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(lexicon) == len({r["Word"].lower() for r in rows})
    first = rows[0]
    np.testing.assert_allclose(
        lexicon[first["Word"]], [float(first[c]) for c in ("V.Mean.Sum", "A.Mean.Sum", "D.Mean.Sum")])


def test_wrong_vad_format_names_file_line_and_column(tmp_path):
    path = write(tmp_path, "vad.csv", "Word,Valence,Arousal\nhappy,8,5\n")
    with pytest.raises(ValueError, match=r"vad.csv, line 1: columns \['V.Mean.Sum'"):
        text.read_vad_lexicon(path)
    path = write(tmp_path, "vad2.csv", "Word,V.Mean.Sum,A.Mean.Sum,D.Mean.Sum\nhappy,8,5,6\nsad,x,2,3\n")
    with pytest.raises(ValueError, match=r"vad2.csv, line 3, column V.Mean.Sum: 'x'"):
        text.read_vad_lexicon(path)


@pytest.fixture(scope="module")
def tiny_vectors():
    from gensim.models import KeyedVectors
    vectors = KeyedVectors(vector_size=4)
    vectors.add_vectors(["love", "war"], np.arange(8, dtype=np.float32).reshape(2, 4))
    return vectors


@pytest.mark.parametrize("name", ["v.txt", "v.bin", "v.kv"])
def test_word_vectors_load_in_every_format(tmp_path, tiny_vectors, name):
    path = tmp_path / name
    if name == "v.kv":
        tiny_vectors.save(str(path))
    else:
        tiny_vectors.save_word2vec_format(str(path), binary=name.endswith(".bin"))
    loaded = text.load_word_vectors(path, 4)
    np.testing.assert_allclose(loaded["war"], tiny_vectors["war"])


def test_word_vectors_of_another_width_are_refused_early(tmp_path, tiny_vectors):
    path = tmp_path / "v.txt"
    tiny_vectors.save_word2vec_format(str(path))
    with pytest.raises(ValueError, match=r"v.txt holds 4-d word vectors but the plot features use 300-d ones"):
        text.load_word_vectors(path, 300)
    garbage = write(tmp_path, "g.bin", "not vectors at all")
    with pytest.raises(ValueError, match="cannot read word vectors from .*g.bin"):
        text.load_word_vectors(garbage, 4)


CORPUS = [["the", "dog", "chases", "the", "cat"], ["the", "cat", "sleeps"], ["a", "dog", "sleeps"]] * 5
TRAIN_SCRIPT = (
    "import sys, numpy as np; from hvae_tf.features import text; "
    "wv = text.train_word_vectors({corpus!r}, 8, 3, progress=False); "
    "np.save(sys.argv[1], wv[sorted(wv.key_to_index)])"
)


def test_trained_word_vectors_do_not_depend_on_the_process_hash_seed(tmp_path):
    vectors = text.train_word_vectors(CORPUS, 8, seed=3, progress=False)
    here = vectors[sorted(vectors.key_to_index)]
    np.testing.assert_array_equal(
        here, text.train_word_vectors(CORPUS, 8, seed=3, progress=False)[sorted(vectors.key_to_index)])
    assert not np.allclose(here, text.train_word_vectors(CORPUS, 8, seed=4, progress=False)[
        sorted(vectors.key_to_index)])
    out = tmp_path / "other.npy"
    env = {**os.environ, "PYTHONHASHSEED": "12345",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-c", TRAIN_SCRIPT.format(corpus=CORPUS), str(out)],
                   check=True, env=env, timeout=120)
    np.testing.assert_array_equal(here, np.load(out))


def test_no_trainable_words_gives_none():
    assert text.train_word_vectors([["once"]], 8, seed=0, progress=False) is None
