"""Finding and opening a release (folder, zip, parent folder) and reading all of it, per layout."""

import json
import re
import shutil
import types
import zipfile
from unittest import mock

import pandas as pd
import pytest

from tf_datasets.hvae_movielens import movies, releases
from tf_datasets.hvae_movielens.dummy_data import dummy_data_dir, write_tiny_20m
from tf_datasets.hvae_movielens.files import (
    MovieLensFormatError,
    ReadReport,
    ReleaseFiles,
    fingerprint_difference,
    locate_release,
    source_fingerprint,
)
from tf_datasets.hvae_movielens.movies import read_movies
from tf_datasets.hvae_movielens.ratings import read_ratings


@pytest.fixture
def ml20m(tmp_path):
    return write_tiny_20m(tmp_path / "ml-20m")


def read_both(release, path, report=None):
    """Both tables of a release, as the builder's two configs read them."""
    report = report if report is not None else ReadReport()
    movies, genome_tags = read_movies(release, path, report=report)
    ratings = read_ratings(release, path, report)
    return types.SimpleNamespace(ratings=ratings, movies=movies, genome_tags=genome_tags,
                                 has_genome=bool(genome_tags))


def test_folder_zip_and_parent_folder_read_the_same(tmp_path, ml20m):
    archive = tmp_path / "ml-20m.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in ml20m.iterdir():
            z.write(f, f"ml-20m/{f.name}")
    zipped_only = tmp_path / "zipped"
    zipped_only.mkdir()
    shutil.copy(archive, zipped_only / "ml-20m.zip")
    direct = read_both("20m", ml20m)
    for path in (archive, tmp_path, zipped_only):
        other = read_both("20m", path)
        pd.testing.assert_frame_equal(other.ratings, direct.ratings)
        pd.testing.assert_frame_equal(other.movies.drop(columns="genome_relevance"),
                                      direct.movies.drop(columns="genome_relevance"))
        assert other.genome_tags == direct.genome_tags


def test_1m_dat_files_latin1_and_childrens(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_bytes(b"1::10::5::978300760\n1::20::3::978300000\n2::20::1::956703932\n")
    (folder / "movies.dat").write_bytes(
        b"10::Caf\xe9 Story (1995)::Animation|Children's\n20::Plain (1996)::Drama\n")
    data = read_both("1m", tmp_path)
    assert data.movies.title.tolist() == ["Caf\u00e9 Story (1995)", "Plain (1996)"]
    assert data.movies.genres[0] == ("Animation", "Children")
    assert data.ratings.movieId.tolist() == [20, 10, 20]  # user 1 by time
    assert data.ratings.timestamp.tolist() == [978300000, 978300760, 956703932]
    assert not data.has_genome and (data.movies.imdbId == "").all()


def test_1m_ratings_csv_without_timestamps(tmp_path):
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating\n1,20,4\n1,10,5\n")
    (tmp_path / "movies.dat").write_text("10::A (1990)::Drama\n20::B (1991)::Comedy\n")
    (tmp_path / "links.csv").write_text("movieId,imdbId,tmdbId\n10,0000042,\n")
    report = ReadReport()
    data = read_both("1m", tmp_path, report=report)
    assert data.ratings.timestamp.tolist() == [-1, -1]
    assert data.ratings.movieId.tolist() == [10, 20]
    assert data.movies.imdbId.tolist() == ["tt0000042", ""]
    assert not report.has_timestamps


def test_100k_files(tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("1\t2\t3\t881250949\n1\t1\t4\t881250000\n")
    (folder / "u.genre").write_text("unknown|0\nAction|1\nChildren's|2\n\n")
    (folder / "u.item").write_bytes(
        b"1|Toy Tale (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy|0|0|1\n"
        b"2|Caf\xe9 (1996)|01-Jan-1996||http://x|1|1|0\n")
    data = read_both("100k", folder)
    assert data.movies.genres.tolist() == [("Children",), ("Unknown", "Action")]
    assert data.movies.title[1] == "Caf\u00e9 (1996)"
    assert (data.movies.imdbId == "").all()  # the IMDb URL is no id
    assert data.ratings.movieId.tolist() == [1, 2]


def test_missing_file_names_it_and_the_download(tmp_path):
    folder = write_tiny_20m(tmp_path / "ml-20m", {"movies.csv": None})
    with pytest.raises(FileNotFoundError) as error:
        read_both("20m", folder)
    assert "movies.csv is missing" in str(error.value)
    assert "https://files.grouplens.org/datasets/movielens/ml-20m.zip" in str(error.value)


def test_no_release_in_folder_says_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"expected ml-1m/ .*ml-1m\.zip"):
        locate_release("1m", tmp_path)


def test_empty_file(tmp_path):
    folder = write_tiny_20m(tmp_path / "ml-20m", {"genome-scores.csv": ""})
    with pytest.raises(MovieLensFormatError, match=r"genome-scores\.csv is empty"):
        read_both("20m", folder)
    folder = write_tiny_20m(tmp_path / "other" / "ml-20m", {"ratings.csv": "userId,movieId,rating,timestamp\n"})
    with pytest.raises(MovieLensFormatError, match=r"ratings\.csv has no rating rows"):
        read_ratings("20m", folder)


def test_real_latest_small(shared_data):
    report = ReadReport()
    data = read_both("latest-small", shared_data / "ml-latest-small", report=report)
    assert len(data.ratings) == 100_836 and data.ratings.userId.nunique() == 610
    assert len(data.movies) == 9_742
    assert report.duplicate_ratings_dropped == 0
    assert data.ratings.groupby("userId").timestamp.apply(lambda t: t.is_monotonic_increasing).all()


# ---------------------------------------------------------------------------- fingerprint


def _zip(folder, archive, prefix):
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(folder.iterdir()):
            z.write(f, f"{prefix}{f.name}")
    return archive


def test_fingerprint_is_the_files_content_wherever_they_lie(tmp_path, ml20m):
    folder = source_fingerprint("20m", ml20m)
    zipped = source_fingerprint("20m", _zip(ml20m, tmp_path / "ml-20m.zip", "ml-20m/"))
    copy = source_fingerprint("20m", shutil.copytree(ml20m, tmp_path / "copy" / "ml-20m"))
    assert folder["digest"] == zipped["digest"] == copy["digest"]
    assert folder["source"] != zipped["source"]  # where it was read is kept, not summed

    links = ml20m / "links.csv"
    links.write_bytes(links.read_bytes().replace(b"0000010", b"0000011"))  # same size
    changed = source_fingerprint("20m", ml20m)
    assert changed["digest"] != folder["digest"]
    assert fingerprint_difference(folder, changed) == "links.csv: same size, other content"
    (ml20m / "omdb.jsonl").write_text('{"imdbID": "tt0000010", "Response": "True"}\n')
    with_omdb = source_fingerprint("20m", ml20m)
    assert fingerprint_difference(changed, with_omdb) == "omdb.jsonl was not there"


def _release_layouts(tmp_path):
    """One folder per layout the readers know, each with every optional file it may have."""
    ml20m = write_tiny_20m(tmp_path / "ml-20m")
    (tmp_path / "omdb.jsonl").write_text('{"imdbID": "tt0000010", "Response": "True"}\n')
    ml1m = shutil.copytree(dummy_data_dir() / "extracted" / "ml-1m", tmp_path / "x" / "ml-1m")
    (ml1m / "links.csv").write_text("movieId,imdbId,tmdbId\n10,0000042,\n")
    ml1m_csv = tmp_path / "y" / "ml-1m"  # ratings.csv without timestamps (a rebuilt ml-1m)
    ml1m_csv.mkdir(parents=True)
    (ml1m_csv / "ratings.csv").write_text("userId,movieId,rating\n1,10,4\n")
    (ml1m_csv / "movies.dat").write_text("10::A (1990)::Drama\n")
    ml100k = tmp_path / "ml-100k"
    ml100k.mkdir()
    (ml100k / "u.data").write_text("1\t1\t4\t881250949\n")
    (ml100k / "u.genre").write_text("unknown|0\nAction|1\n")
    (ml100k / "u.item").write_text("1|Toy (1995)|01-Jan-1995||http://x|0|1\n")
    return [("20m", ml20m), ("1m", ml1m), ("1m", ml1m_csv), ("100k", ml100k)]


def test_fingerprint_covers_every_file_the_readers_open(tmp_path):
    # A reader that opens a file the fingerprint leaves out would let a changed file reuse a
    # dataset built from the old one.
    for release, folder in _release_layouts(tmp_path):
        opened = set()
        real_open, real_read_omdb = ReleaseFiles.open, movies.read_omdb

        def recording_open(self, name, real_open=real_open, opened=opened):
            opened.add(name)
            return real_open(self, name)

        def recording_read_omdb(path, report, real=real_read_omdb, opened=opened):
            opened.add(releases.OMDB_FILE)
            return real(path, report)

        with mock.patch.object(ReleaseFiles, "open", recording_open), \
                mock.patch.object(movies, "read_omdb", recording_read_omdb):
            read_movies(release, folder)
            read_ratings(release, folder)
            names = {e["name"] for e in source_fingerprint(release, folder)["files"]}
        assert names == opened, (release, folder)
        assert release != "20m" or releases.OMDB_FILE in opened


@pytest.mark.parametrize("name", ["ratings.csv", "movies.csv", "links.csv", "genome-tags.csv",
                                  "genome-scores.csv"])
def test_last_line_without_newline_is_an_error_naming_file_and_line(tmp_path, ml20m, name):
    text = (ml20m / name).read_bytes()
    cut = text[: text.rstrip(b"\n").rfind(b",") + 2]  # inside the last line's last field
    (ml20m / name).write_bytes(cut)
    line = cut.count(b"\n") + 1
    last = cut.rsplit(b"\n", 1)[-1].decode()
    expected = (rf"ml-20m.*/{re.escape(name)} line {line} \({re.escape(repr(last))}\) ends without a "
                r"newline: the file looks "
                r"truncated; download it again \(https://files\.grouplens\.org/datasets/movielens/"
                r"ml-20m\.zip\)")
    for path in (ml20m, _zip(ml20m, tmp_path / "ml-20m.zip", "ml-20m/")):
        report = ReadReport()
        with pytest.raises(MovieLensFormatError, match=expected):
            read_ratings("20m", path, report) if name == "ratings.csv" else read_movies("20m", path)


def test_truncated_ratings_dat_is_an_error_too(tmp_path):
    # The tester's case in ML-1M's layout: a ratings file cut inside the last timestamp.
    folder = shutil.copytree(dummy_data_dir() / "extracted" / "ml-1m", tmp_path / "ml-1m")
    ratings = folder / "ratings.dat"
    ratings.write_bytes(ratings.read_bytes() + b"318::2858::3::125")
    with pytest.raises(MovieLensFormatError,
                       match=r"ratings\.dat line 9 \('318::2858::3::125'\) ends without a newline"):
        read_ratings("1m", folder)


def test_count_warnings_only_for_counts_other_than_the_release_publishes():
    for release in releases.RELEASES.values():
        assert releases.count_warnings(release.name, release.n_ratings, release.n_movies) == []
    warnings = releases.count_warnings("20m", 100_836, 9_742)
    assert len(warnings) == 2
    assert warnings[0].startswith("read 100,836 ratings where MovieLens 20m has 20,000,263")
    assert "read 9,742 movies where MovieLens 20m has 27,278" in warnings[1]
    assert releases.count_warnings("1m", 1_000_209, 0) == []  # 0: not read, not compared
    assert json.dumps(releases.RELEASES["1m"].n_movies) == "3883"
