"""A SavedModel that TF Serving can load: raw MovieLens ids in, top-k recommended ids out.

Serving clients know MovieLens movie ids, not our column indices, and send variable-length
histories; TF Serving's REST API takes rectangular tensors, so the input is a batch of padded id
lists (-1 = padding). Unknown ids are ignored, duplicates count once, and the movies a user gave are
never recommended back. A model trained with new movies (no clicks yet) also answers
`new_movie_ids` / `new_scores`: the best of the new movies alone, a shelf for movies that could not
compete with clicked ones yet (scored by the model's `new_movie_scores`: for a sharing hybrid with
a shallow path, the VAE's logits, which order them as the product does without its float32
ties). The archive needs only TensorFlow to load (no hvae_tf import).

Each version folder holds what serving needs and nothing else (no optimizer state), gets the modes
the user's umask gives (TF Serving often runs as another user), and carries TF Serving's warm-up
requests. A bad export target is refused by `check_export_target` before training starts.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

SIGNATURE_NAME = "serving_default"
SIGNATURE_INPUT = "movie_ids"
CONFIG_ASSET = "hvae_config.json"
WARMUP_ASSET = "tf_serving_warmup_requests"  # the name TF Serving looks for in assets.extra/
INPUT_RULE = "movie_ids must be a 2-d [batch, ids] int64 tensor (padded with -1)"
# A temp folder whose writer cannot be checked (another machine, or no pid in its name) is
# removed once nothing in it has changed for this long: a live export writes without pause.
STALE_AFTER_SECONDS = 3600.0
_TEMP_NAME = re.compile(r"\.tmp-(?P<version>\d+)-(?P<host>.+)-(?P<pid>\d+)-(?P<token>[0-9a-f]{8})")


class RecommenderModule(tf.Module):
    """The serving graph: the id mapping, the model's scores and the top-k step.

    The module tracks the variables its function reads, not the model: a compiled model's
    `optimizer` would bring Adam's two slots per weight (two thirds of the variables) along.
    """

    def __init__(self, model, movie_ids: np.ndarray, k: int = 100):
        super().__init__()
        self.k = int(min(k, len(movie_ids)))
        movie_ids = np.asarray(movie_ids, dtype=np.int64)
        self.movie_ids = tf.constant(movie_ids)
        self.id_to_column = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                movie_ids, np.arange(len(movie_ids), dtype=np.int64)
            ),
            default_value=-1,
        )
        scores_of = model.scores  # held by the closures only, so the model is not tracked
        # Another pass only where the shelf's order differs from the scores' (see new_movie_scores).
        new_scores_of = model.new_movie_scores if getattr(model, "ranks_new_movies_apart", False) else None
        new_columns = np.asarray(getattr(model, "new_movies", ()), np.int64)
        self.new_k = int(min(k, len(new_columns)))
        self.new_columns = tf.constant(new_columns)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64, name=SIGNATURE_INPUT)])
        def recommend(movie_ids):
            columns = self.id_to_column.lookup(_checked_rank_2(movie_ids))
            columns = _drop_repeats(columns)
            scores = scores_of(columns)
            seen = _seen_mask(columns, tf.shape(scores)[1])

            def unseen(values):  # the user's own movies are never recommended back
                return tf.where(seen, tf.constant(-np.inf, values.dtype), values)

            scores = unseen(scores)
            answer = _top_ids(scores, self.k, self.movie_ids, "")
            if self.new_k:
                shelf = scores if new_scores_of is None else unseen(new_scores_of(columns))
                new_scores = tf.gather(shelf, self.new_columns, axis=1)
                answer.update(_top_ids(new_scores, self.new_k, tf.gather(self.movie_ids, self.new_columns),
                                       "new_"))
            return answer

        # Exactly the variables the traced function captures (the saver needs them tracked), under
        # the model's own names where it has them.
        captured = recommend.get_concrete_function().variables
        names = {id(getattr(v, "value", v)): v.path.replace("/", "-") for v in model.variables}
        weights = {names.get(id(v), f"variable_{i}"): v for i, v in enumerate(captured)}
        self.served_weights = weights if len(weights) == len(captured) else list(captured)
        self.recommend = recommend


def _top_ids(scores, k: int, ids, prefix: str) -> dict:
    """The k best of `scores`' columns as ids (`ids[column]`) and scores; -1 and 0 where fewer than
    k were left to recommend (the rest were the user's own)."""
    top = tf.math.top_k(scores, k=k, sorted=True)
    found = tf.math.is_finite(top.values)
    return {f"{prefix}movie_ids": tf.where(found, tf.gather(ids, top.indices), tf.constant(-1, tf.int64)),
            f"{prefix}scores": tf.where(found, top.values, tf.zeros_like(top.values))}


def _checked_rank_2(movie_ids):
    """movie_ids, once a run-time check has found it 2-d.

    A loaded signature (and TF Serving) runs on a 1-d, 3-d or 4-d tensor despite its [None, None]
    spec, and static checks such as tf.debugging.assert_rank are folded away against that spec;
    the rank counted from the run-time shape vector is not.
    """
    dims = tf.shape(movie_ids, out_type=tf.int64)
    rank = tf.shape(tf.where(dims >= 0), out_type=tf.int64)[0]
    check = tf.debugging.Assert(tf.equal(rank, 2), [INPUT_RULE + "; got shape", dims], summarize=8)
    with tf.control_dependencies([check]):
        return tf.identity(movie_ids)


def _drop_repeats(columns):
    """Sort each row and blank out repeated columns, so a duplicated id counts once."""
    columns = tf.sort(columns, axis=1, direction="DESCENDING")
    repeat = tf.concat(
        [tf.zeros_like(columns[:, :1], tf.bool), tf.equal(columns[:, 1:], columns[:, :-1])], axis=1
    )
    return tf.where(repeat, tf.constant(-1, tf.int64), columns)


def _seen_mask(columns, n_movies):
    """[batch, n_movies] boolean: the movies in each user's input (built sparse, not batch x len x N)."""
    valid = tf.where(columns >= 0)
    positions = tf.stack([valid[:, 0], tf.gather_nd(columns, valid)], axis=1)
    batch = tf.shape(columns, out_type=tf.int64)[0]
    return tf.scatter_nd(
        positions, tf.ones([tf.shape(positions)[0]], tf.bool), tf.stack([batch, tf.cast(n_movies, tf.int64)])
    )


def warmup_requests(movie_ids: np.ndarray, name: str) -> list[prediction_log_pb2.PredictionLog]:
    """Requests TF Serving replays when it loads the model, so the first client does not pay for
    graph set-up: an empty history, a short one, and a batch of a long, a mid and an empty one."""
    ids = np.asarray(movie_ids, dtype=np.int64)

    def spread(n):  # n distinct real ids from across the catalogue
        return ids[np.linspace(0, len(ids) - 1, num=min(n, len(ids))).astype(np.int64)]

    def padded(rows):
        batch = np.full((len(rows), max(len(r) for r in rows)), -1, np.int64)
        for i, row in enumerate(rows):
            batch[i, : len(row)] = row
        return batch

    batches = [np.full((1, 8), -1, np.int64), padded([spread(5)]), padded([spread(300), spread(40), []])]
    records = []
    for batch in batches:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = name
        request.model_spec.signature_name = SIGNATURE_NAME
        request.inputs[SIGNATURE_INPUT].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.int64))
        records.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)))
    return records


def write_warmup(folder: Path, movie_ids: np.ndarray, name: str) -> Path:
    """assets.extra/tf_serving_warmup_requests: a TFRecord file of PredictionLog records."""
    path = Path(folder) / "assets.extra" / WARMUP_ASSET
    path.parent.mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in warmup_requests(movie_ids, name):
            writer.write(record.SerializeToString())
    return path


def next_version(model_dir: Path) -> int:
    """TF Serving serves the highest integer folder; a new export takes the next one."""
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def _check_version(version) -> None:
    if int(version) < 1:
        raise ValueError(
            f"--export-version {version}: TF Serving serves versions numbered 1 and up; "
            "pass --export-version 1 or higher, or leave it out to take the next free version"
        )


def check_export_target(export_dir: str | os.PathLike, name: str, version: int | None = None) -> Path:
    """The model folder `<export_dir>/<name>`, once it is known that an export can be written there.

    Called before training, so that a bad target fails in a second rather than after the run;
    export_for_serving calls it again. Also removes the temp folders of killed exports.
    """
    model_dir = Path(export_dir) / name
    if version is not None:
        _check_version(version)
    existing = model_dir
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"--export-dir {export_dir}: {existing} is a file, so the model folder {model_dir} "
            "cannot be made: pass another --export-dir, or move that file away"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"--export-dir {export_dir}: cannot write in {existing} (no permission, or a read-only "
            "file system): pass a folder you can write to as --export-dir, or fix its permissions"
        )
    if version is not None:
        final = model_dir / str(int(version))
        if final.exists() or final.is_symlink():
            raise FileExistsError(
                f"--export-version {version}: {final} already exists: pass another --export-version "
                f"(the next free one is {next_version(model_dir)}), leave it out to take the next "
                "free version, or remove that folder"
            )
    remove_stale_temps(model_dir)
    return model_dir


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


def _alive(pid: int) -> bool:
    if not 0 < pid < 2**31:  # os.kill(0, 0) would signal our own process group
        return False
    if os.name == "nt":  # os.kill there terminates the process: take it as alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _last_change(folder: Path) -> float:
    newest = folder.lstat().st_mtime
    for root, dirs, files in os.walk(folder):
        for entry in (*dirs, *files):
            try:
                newest = max(newest, os.lstat(os.path.join(root, entry)).st_mtime)
            except OSError:
                pass
    return newest


def remove_stale_temps(model_dir: Path) -> list[Path]:
    """Remove `.tmp-*` folders of killed exports of this model; returns those removed.

    A temp folder named by this machine's export (`.tmp-<version>-<host>-<pid>-<token>`) goes once
    its pid is no longer alive; one from another machine or without a pid (older exports) goes once
    untouched for STALE_AFTER_SECONDS. A live writer's folder is never removed.
    """
    removed: list[Path] = []
    if not model_dir.is_dir():
        return removed
    host = _host()
    for temp in model_dir.glob(".tmp-*"):
        if temp.is_symlink() or not temp.is_dir():
            continue
        match = _TEMP_NAME.fullmatch(temp.name)
        if match and match["host"] == host:
            stale = not _alive(int(match["pid"]))
        else:
            stale = time.time() - _last_change(temp) > STALE_AFTER_SECONDS
        if stale:
            shutil.rmtree(temp, ignore_errors=True)
            if not temp.exists():
                removed.append(temp)
    return removed


def _make_temp(model_dir: Path, version: int) -> Path:
    """A new temp folder named by its writer (host and pid), so a later export can tell if it is live."""
    while True:
        temp = model_dir / f".tmp-{version}-{_host()}-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            temp.mkdir()
            return temp
        except FileExistsError:
            continue


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it, at once restored
    os.umask(mask)
    return mask


def _apply_umask(folder: Path) -> None:
    """Give the tree the modes new files get under the user's umask (dirs 0o777, files 0o666, less
    the umask): a temp folder is private, and TF Serving running as another user could not read it."""
    mask = _umask()
    dir_mode, file_mode = 0o777 & ~mask, 0o666 & ~mask
    os.chmod(folder, dir_mode)
    for root, dirs, files in os.walk(folder):
        for entry, mode in [*((d, dir_mode) for d in dirs), *((f, file_mode) for f in files)]:
            path = os.path.join(root, entry)
            if not os.path.islink(path):
                os.chmod(path, mode)


def export_for_serving(
    model, movie_ids: np.ndarray, export_dir: str | os.PathLike, name: str, *,
    k: int = 100, version: int | None = None, config_json: str | None = None,
) -> Path:
    """Write `<export_dir>/<name>/<version>/` atomically: a temp folder beside it, then a rename.

    TF Serving only picks up integer-named folders, so the half-written temp folder is never served,
    and a crash leaves the previous version in place.
    """
    model_dir = check_export_target(export_dir, name, version)
    model_dir.mkdir(parents=True, exist_ok=True)
    version = next_version(model_dir) if version is None else int(version)
    final = model_dir / str(version)
    module = RecommenderModule(model, movie_ids, k=k)
    tmp = _make_temp(model_dir, version)
    try:
        tf.saved_model.save(module, str(tmp), signatures={SIGNATURE_NAME: module.recommend})
        if config_json is not None:  # lets evaluate.py find the split the model was trained on
            (tmp / "assets.extra").mkdir(exist_ok=True)
            (tmp / "assets.extra" / CONFIG_ASSET).write_text(config_json)
        write_warmup(tmp, movie_ids, name)
        _apply_umask(tmp)
        if final.exists():  # taken by another export while this one was written
            raise FileExistsError(f"--export-version {version}: {final} was written by another export "
                                  "meanwhile: pass another --export-version, or leave it out")
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load_served(path: str | os.PathLike):
    """tf.saved_model.load, after checking the files it reads: on an incomplete copy TF's own error
    speaks of a TensorSliceReader and devices, not of the missing file."""
    path = Path(path)
    variables = path / "variables"
    shards = sorted(variables.glob("variables.data-*-of-*"))
    count = re.search(r"-of-(\d+)$", shards[0].name) if shards else None
    n = int(count[1]) if count else 1
    needed = [path / "saved_model.pb", variables / "variables.index",
              *(variables / f"variables.data-{i:05d}-of-{n:05d}" for i in range(n))]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{path} is an incomplete SavedModel export: {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing; re-export the model with train.py "
            "(or copy the whole version folder again)"
        )
    return tf.saved_model.load(str(path))
