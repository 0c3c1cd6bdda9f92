"""Plot text to numbers: tokens, category lexicons (LIWC or Empath), VAD norms and word vectors.

Every plot feature is an average over the plot's tokens of a per-word row (a binary category
vector, a valence/arousal/dominance triple, a word vector), so all of them are computed the same
way: a sparse movies x vocabulary count matrix times a vocabulary x features matrix.

No network and no downloaded data at run time: NLTK's RegexpTokenizer needs no data files, Empath's
categories are read from the file its PyPI package ships, and the other resources are user files.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import os
import re
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse as sp

# Words, numbers, and words joined by hyphens or apostrophes ("in-law", "don't").
TOKEN_PATTERN = r"\w+(?:[-']\w+)*"
UNDECODABLE = re.compile("[\ufffd\udc80-\udcff]")  # replacement char, surrogate-escaped bytes
VAD_COLUMNS = {"valence": "V.Mean.Sum", "arousal": "A.Mean.Sum", "dominance": "D.Mean.Sum"}

_tokenizer = None


def tokenise(text: str) -> list[str]:
    """Lower-case word tokens; curly apostrophes are straightened so "don’t" == "don't"."""
    global _tokenizer
    if _tokenizer is None:  # nltk takes seconds to import: only pay it when text is processed
        from nltk.tokenize import RegexpTokenizer

        _tokenizer = RegexpTokenizer(TOKEN_PATTERN)
    return _tokenizer.tokenize(text.lower().replace("\u2019", "'"))


def clean_text(raw) -> tuple[str, bool]:
    """(text without undecodable characters, whether there were any).

    Bytes are decoded as UTF-8; invalid bytes, U+FFFD replacement characters and
    surrogate-escaped bytes are dropped rather than passed on as fake words.
    """
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode("utf-8", errors="replace")
    text = "" if raw is None else str(raw)
    cleaned = UNDECODABLE.sub(" ", text)
    return cleaned, cleaned != text


# ---------------------------------------------------------------------------- category lexicons


@dataclasses.dataclass
class CategoryLexicon:
    """Words -> category indices. `prefixes` holds LIWC's "word*" entries (matched by stem).

    A token takes its exact entry if there is one, else its longest matching prefix entry, as
    LIWC does. Multi-word entries ("kind of", Empath's "last_straw") cannot match single tokens
    and are left out; `skipped_phrases` counts them.
    """

    name: str
    categories: list[str]
    words: dict[str, tuple[int, ...]]
    prefixes: dict[str, tuple[int, ...]]
    skipped_phrases: int = 0

    def categories_of(self, token: str) -> tuple[int, ...]:
        if token in self.words:
            return self.words[token]
        for end in range(len(token), 0, -1):
            if token[:end] in self.prefixes:
                return self.prefixes[token[:end]]
        return ()

    def term_matrix(self, vocabulary: list[str]) -> sp.csr_matrix:
        """vocabulary x categories, 1 where the word belongs to the category."""
        rows, cols = [], []
        for i, token in enumerate(vocabulary):
            found = self.categories_of(token)
            rows.extend([i] * len(found))
            cols.extend(found)
        data = np.ones(len(rows), dtype=np.float32)
        return sp.csr_matrix((data, (rows, cols)), shape=(len(vocabulary), len(self.categories)))


def empath_lexicon() -> CategoryLexicon:
    """Empath's 194 categories from the data file of its PyPI package (read directly: importing
    `empath` pulls in `requests` and a web client we do not need)."""
    spec = importlib.util.find_spec("empath")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the default plot categories come from the `empath` package: pip install empath, "
            "or pass a LIWC dictionary (.dic) instead"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "categories.tsv"
    categories, words, skipped = [], {}, 0
    for line in path.read_text(encoding="utf-8").splitlines():
        name, *terms = line.rstrip("\n").split("\t")
        if not name.strip():
            continue
        index = len(categories)
        categories.append(name.strip())
        for term in {t.strip().lower() for t in terms if t.strip()}:
            if "_" in term or " " in term:
                skipped += 1
                continue
            words[term] = words.get(term, ()) + (index,)
    return CategoryLexicon("empath", categories, words, {}, skipped)


_LIWC_FIELD = re.compile(r"\([^)]*\)\S*|\S+")
_LIWC_CONDITIONAL = re.compile(r"^\(([\d\s]+)\)(\d+)(?:/(\d+))?$")


def read_liwc_dic(path: str | os.PathLike) -> CategoryLexicon:
    """A LIWC2007/2015 dictionary: a `%`-fenced block of "number<TAB>name" lines, then
    "word<TAB>number<TAB>number..." lines, where a trailing `*` makes the word a prefix.

    LIWC2007's conditional fields ("(02 134)125/464": 125 after a word of category 02 or 134,
    else 464) are read as their unconditional part (464), or skipped when there is none: tokens
    are scored one at a time here.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LIWC dictionary {path} not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # LIWC's own files are often Windows-1252/Latin-1
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]

    def fail(line_no, why):
        raise ValueError(f"{path}, line {line_no}: {why} (expected the LIWC .dic format: "
                         "'%', 'number<TAB>category' lines, '%', then 'word<TAB>number...' lines)")

    if not lines or lines[0][1] != "%":
        fail(lines[0][0] if lines else 1, "the file must start with a '%' line")
    number_to_index, categories = {}, []
    position = 1
    while position < len(lines) and lines[position][1] != "%":
        line_no, line = lines[position]
        fields = line.split(None, 1)
        if len(fields) < 2 or not fields[0].isdigit():
            fail(line_no, f"a category line must be 'number<TAB>name', got {line!r}")
        number = int(fields[0])
        if number in number_to_index:
            fail(line_no, f"category number {number} is declared twice")
        number_to_index[number] = len(categories)
        categories.append(fields[1].split()[0])
        position += 1
    if position >= len(lines):
        fail(lines[-1][0], "the category block is never closed with a second '%' line")
    if not categories:
        fail(lines[position][0], "no categories between the two '%' lines")

    words, prefixes, skipped = {}, {}, 0
    for line_no, line in lines[position + 1:]:
        word, _, rest = line.partition("\t") if "\t" in line else line.partition(" ")
        word = word.strip().lower()
        if not word or not rest.strip():
            fail(line_no, f"a word line needs a word and at least one category, got {line!r}")
        found = []
        for field in _LIWC_FIELD.findall(rest):
            conditional = _LIWC_CONDITIONAL.match(field)
            if conditional:
                field = conditional.group(3)
                if field is None:
                    continue
            if not field.isdigit():
                fail(line_no, f"{field!r} is not a category number (word {word!r})")
            if int(field) not in number_to_index:
                fail(line_no, f"category {field} of word {word!r} is not declared in the header")
            found.append(number_to_index[int(field)])
        if " " in word:
            skipped += 1
            continue
        target = prefixes if word.endswith("*") else words
        key = word.rstrip("*")
        target[key] = tuple(sorted(set(target.get(key, ()) + tuple(found))))
    return CategoryLexicon("liwc", categories, words, prefixes, skipped)


# ---------------------------------------------------------------------------- VAD norms


def read_vad_lexicon(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Warriner et al. (2013) norms: word -> [valence, arousal, dominance] (the .Mean.Sum columns)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VAD lexicon {path} not found (the Warriner et al. 2013 CSV)")
    lexicon = {}
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, None) or []
        needed = ["Word", *VAD_COLUMNS.values()]
        missing = [c for c in needed if c not in header]
        if missing:
            raise ValueError(
                f"{path}, line 1: columns {missing} missing; a Warriner et al. (2013) CSV has "
                f"{needed} (found {header[:8]}{'...' if len(header) > 8 else ''})"
            )
        where = [header.index(c) for c in needed]
        for line_no, row in enumerate(reader, 2):
            if not row:
                continue
            if len(row) <= max(where):
                raise ValueError(f"{path}, line {line_no}: {len(row)} fields, expected {len(header)}")
            word = row[where[0]].strip().lower()
            scores = []
            for column, j in zip(needed[1:], where[1:]):
                try:
                    scores.append(float(row[j]))
                except ValueError:
                    raise ValueError(
                        f"{path}, line {line_no}, column {column}: {row[j]!r} is not a number"
                    ) from None
            if word and word not in lexicon:
                lexicon[word] = np.asarray(scores, dtype=np.float32)
    if not lexicon:
        raise ValueError(f"{path}: no words in the VAD lexicon")
    return lexicon


# ---------------------------------------------------------------------------- word vectors


def load_word_vectors(path: str | os.PathLike, dim: int):
    """gensim KeyedVectors from word2vec binary (.bin[.gz]), word2vec text (.txt/.vec[.gz]) or a
    gensim save (KeyedVectors or a Word2Vec model); another width than `dim` is an error here,
    before any work, rather than a shape error later."""
    from gensim.models import KeyedVectors
    from gensim.utils import SaveLoad

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"word vectors {path} not found")
    name = path.name.lower().removesuffix(".gz")
    try:
        if name.endswith(".bin"):
            vectors = KeyedVectors.load_word2vec_format(str(path), binary=True)
        elif name.endswith((".txt", ".vec")):
            vectors = KeyedVectors.load_word2vec_format(str(path), binary=False)
        else:
            vectors = SaveLoad.load(str(path))
            vectors = getattr(vectors, "wv", vectors)
    except Exception as error:  # gensim raises many kinds; the user needs the file and the formats
        raise ValueError(
            f"cannot read word vectors from {path} ({type(error).__name__}: {error}); use word2vec "
            "binary (.bin), word2vec text (.txt/.vec) or a gensim KeyedVectors/Word2Vec save"
        ) from error
    if not isinstance(vectors, KeyedVectors):
        raise ValueError(f"{path} holds a {type(vectors).__name__}, not word vectors")
    if vectors.vector_size != dim:
        raise ValueError(
            f"{path} holds {vectors.vector_size}-d word vectors but the plot features use {dim}-d "
            f"ones (as GoogleNews word2vec): pass --word-vectors a {dim}-d file, or leave it out "
            "to train vectors on the plots"
        )
    return vectors


def stable_hash(text: str) -> int:
    """A string hash that is the same in every process (Python's hash() is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


def train_word_vectors(corpus: list[list[str]], dim: int, seed: int, *, min_count: int = 2,
                       epochs: int = 5, progress: bool = True):
    """Word2Vec trained on the plots themselves, when no pretrained vectors are given.

    Deterministic for a seed: one worker thread (several would interleave updates in a
    scheduling-dependent order) and a process-independent `hashfxn` (older gensim seeded each
    word's initial vector with Python's per-process salted hash; 4.x seeds from `seed` alone).
    None when no word occurs `min_count` times (nothing to train on).
    """
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec
    from tqdm.auto import tqdm

    counts = Counter(token for tokens in corpus for token in tokens)
    if not any(c >= min_count for c in counts.values()):
        return None

    class EpochBar(CallbackAny2Vec):
        def __init__(self):
            self.bar = tqdm(total=epochs, desc="word2vec on plots", unit="epoch", disable=not progress)

        def on_epoch_end(self, model):
            self.bar.update(1)

        def on_train_end(self, model):
            self.bar.close()

    model = Word2Vec(
        sentences=corpus, vector_size=dim, min_count=min_count, epochs=epochs, seed=seed,
        workers=1, hashfxn=stable_hash, callbacks=[EpochBar()],
    )
    return model.wv


# ---------------------------------------------------------------------------- averaging


def count_tokens(documents: list[list[str]]) -> tuple[sp.csr_matrix, list[str]]:
    """documents x vocabulary token counts, vocabulary in first-seen order (deterministic)."""
    vocabulary: dict[str, int] = {}
    indptr, indices, data = [0], [], []
    for tokens in documents:
        counts = Counter(vocabulary.setdefault(t, len(vocabulary)) for t in tokens)
        indices.extend(counts.keys())
        data.extend(counts.values())
        indptr.append(len(indices))
    matrix = sp.csr_matrix(
        (np.asarray(data, dtype=np.float32), np.asarray(indices, dtype=np.int64), indptr),
        shape=(len(documents), len(vocabulary)),
    )
    return matrix, list(vocabulary)


def average_rows(counts: sp.csr_matrix, rows, known: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per document, the mean of the per-word `rows` over its tokens: summed first, then divided.

    `known` lists the vocabulary indices that `rows` describe (row j = word known[j]); other
    tokens are left out of the mean. Without it, `rows` covers the whole vocabulary. Returns
    (means, how many tokens each mean is over); a document with none gets zeros and 0.
    """
    if known is not None:
        counts = counts[:, known]
    used = np.asarray(counts.sum(axis=1)).ravel()
    sums = counts @ rows
    sums = sums.toarray() if sp.issparse(sums) else np.asarray(sums)
    means = np.zeros(sums.shape, dtype=np.float32)
    np.divide(sums, used[:, None], out=means, where=used[:, None] > 0)
    return means, used.astype(np.int64)
