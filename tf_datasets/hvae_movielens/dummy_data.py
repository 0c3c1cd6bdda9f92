"""The builder's dummy data: a few invented users and movies in each release's real layout.

Written on demand instead of tracked as files, so that nothing in the repository looks like (or
could be mistaken for) a copy of MovieLens or OMDb data, whose licences forbid redistribution.
The cases are the ones the tests need: a duplicate rating, equal timestamps, a quoted title with a
comma, a Latin-1 title in ml-1m (as the real .dat files are encoded), genome rows, OMDb records.
extracted/ stands for what download_and_extract gives; omdb.jsonl is what a manual dir may add.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

# ml-1m's .dat files are Latin-1, as in the real release; the rest UTF-8.
FILES = {
    "extracted/ml-1m/movies.dat": (
        "10::Made-Up Cartoon (1995)::Animation|Children's|Comedy\n"
        '20::Café Fiction (1996)::Drama\n'
        '30::Pretend Thriller (1997)::Thriller\n'
        '40::Never Rated (1998)::Western\n'
    ),
    "extracted/ml-1m/ratings.dat": (
        '1::10::5::978300760\n'
        '1::20::3::978302109\n'
        '2::10::4::978301968\n'
        '2::30::1::978300275\n'
        '2::20::2::978824291\n'
        '3::30::4::978302268\n'
        '4::10::5::978301752\n'
        '4::30::3::978302039\n'
    ),
    "extracted/ml-20m/genome-scores.csv": (
        'movieId,tagId,relevance\n'
        '10,1,0.125\n'
        '10,2,0.5\n'
        '10,3,0.875\n'
        '20,1,0.25\n'
        '20,2,0.75\n'
        '20,3,0.0\n'
        '30,1,1.0\n'
        '30,2,0.375\n'
        '30,3,0.625\n'
        '50,1,0.1\n'
        '50,2,0.2\n'
        '50,3,0.3\n'
    ),
    "extracted/ml-20m/genome-tags.csv": (
        'tagId,tag\n'
        '1,made-up tag\n'
        '2,"tag, with a comma"\n'
        '3,last tag\n'
    ),
    "extracted/ml-20m/links.csv": (
        'movieId,imdbId,tmdbId\n'
        '10,0000010,101\n'
        '20,0000020,\n'
        '30,1234567,303\n'
        '40,0000040,404\n'
        '50,12345678,505\n'
    ),
    "extracted/ml-20m/movies.csv": (
        'movieId,title,genres\n'
        '10,Invented Picture (1995),Adventure|Animation|Children\n'
        '20,"Second Invention, The (2001)",Comedy|Romance\n'
        '30,Third Fake Film (1987),Drama\n'
        '40,A Film Without A Year,(no genres listed)\n'
        '50,Fifth Made-Up Movie (2010),Horror|Thriller\n'
        '60,Sixth Pretend Feature (1999),Sci-Fi\n'
    ),
    "extracted/ml-20m/ratings.csv": (
        'userId,movieId,rating,timestamp\n'
        '1,10,4.0,1000000300\n'
        '1,20,3.5,1000000100\n'
        '1,30,5.0,1000000200\n'
        '2,10,0.5,1100000000\n'
        '2,40,2.0,1100000050\n'
        '2,40,4.5,1100000070\n'
        '3,20,4.0,1200000000\n'
        '3,50,1.0,1200000000\n'
        '3,60,3.0,1199999999\n'
        '4,30,2.5,1300000000\n'
        '5,10,5.0,1400000000\n'
        '5,60,4.0,1400000001\n'
    ),
    "omdb.jsonl": (
        '{"Title": "Invented Picture", "Year": "1995", "Rated": "G", "Released": "01 Jan 1995", "Runtime": "80 min", "Genre": "Animation", "Director": "Nobody", "Writer": "No One", "Actors": "A, B", "Plot": "A made-up plot about toys.", "Language": "English", "Country": "USA", "imdbRating": "8.3", "imdbVotes": "1,000", "imdbID": "tt0000010", "Response": "True"}\n'
        '{"Title": "Second Invention", "Year": "2001", "Rated": "N/A", "Plot": "Another invented story.", "imdbID": "tt0000020", "Response": "True"}\n'
        '{"Response": "False", "Error": "Incorrect IMDb ID.", "imdbID": "tt0000040"}\n'
    ),
}


def write_dummy_data(root: Path) -> Path:
    """Writes the files under root (created if needed) and returns it."""
    for relative, text in FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        encoding = "latin-1" if relative.startswith("extracted/ml-1m/") else "utf-8"
        path.write_bytes(text.encode(encoding))
    return root


@functools.cache
def dummy_data_dir() -> Path:
    """One written copy per process, removed at exit. Tests that modify files copy it first."""
    root = Path(tempfile.mkdtemp(prefix="hvae-dummy-data-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return write_dummy_data(root)


# A smaller ml-20m for the readers' own tests, each case visible in a few lines.
TINY_RATINGS = """userId,movieId,rating,timestamp
1,10,4.0,1000000300
1,20,3.5,1000000100
1,30,5.0,1000000200
2,10,0.5,1000000050
2,40,2.0,1000000060
2,40,4.5,1000000070
3,20,4.0,1000000010
3,30,1.0,1000000010
3,10,3.0,1000000009
"""
TINY_MOVIES = """movieId,title,genres
10,Invented Picture (1995),Adventure|Children
20,"Second Invention, The (2001)",Comedy
30,No Year Here,(no genres listed)
40,Series (2007-),Drama
"""
TINY_LINKS = "movieId,imdbId,tmdbId\n10,0000010,1\n20,12345678,\n30,,3\n"
TINY_GENOME_TAGS = "tagId,tag\n1,first\n2,\"second, with comma\"\n"
TINY_GENOME_SCORES = "movieId,tagId,relevance\n10,1,0.25\n10,2,0.75\n20,2,0.5\n20,1,1.0\n"


def write_tiny_20m(folder: Path, overrides: dict | None = None) -> Path:
    """A tiny ml-20m/ folder; `overrides` maps a file name to its text (None: no such file)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "ratings.csv": TINY_RATINGS, "movies.csv": TINY_MOVIES, "links.csv": TINY_LINKS,
        "genome-tags.csv": TINY_GENOME_TAGS, "genome-scores.csv": TINY_GENOME_SCORES,
    }
    files.update(overrides or {})
    for name, text in files.items():
        if text is not None:
            (folder / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder
