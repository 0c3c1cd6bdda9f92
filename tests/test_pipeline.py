"""Padded index batches: shapes, padding, coverage per epoch, seeded order."""

import numpy as np
import pytest
import scipy.sparse as sp

from hvae_tf.data.pipeline import PADDING, padded_batches

N_MOVIES = 30


@pytest.fixture(scope="module")
def clicks() -> sp.csr_matrix:
    """103 users, some without clicks, lengths 0..12, so batches differ in width."""
    rng = np.random.default_rng(3)
    dense_rows = [rng.choice(N_MOVIES, rng.integers(0, 13), replace=False) for _ in range(103)]
    dense_rows[5] = dense_rows[6] = np.array([], int)
    rows = np.repeat(np.arange(103), [len(r) for r in dense_rows])
    cols = np.concatenate(dense_rows)
    return sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(103, N_MOVIES))


def indices_to_csr(indices: np.ndarray, n_movies: int) -> sp.csr_matrix:
    """Padded index rows back to a binary CSR, to compare batches with the matrix they came from."""
    rows, positions = np.nonzero(indices != PADDING)
    return sp.csr_matrix((np.ones(rows.size, np.float32), (rows, indices[rows, positions])),
                         shape=(indices.shape[0], n_movies))


def _epoch(dataset) -> list[np.ndarray]:
    return [batch.numpy() for batch in dataset]


def _row_sets(matrix: sp.csr_matrix) -> list[tuple]:
    return sorted(tuple(sorted(matrix.indices[a:b])) for a, b in zip(matrix.indptr[:-1], matrix.indptr[1:]))


def test_every_user_once_per_epoch_padded_to_the_batch_longest(clicks):
    dataset = padded_batches(clicks, batch_size=10, seed=7)
    for _ in range(2):
        batches = _epoch(dataset)
        assert [len(b) for b in batches] == [10] * 10 + [3]
        seen = []
        for batch in batches:
            assert batch.dtype == np.int64
            lengths = (batch != -1).sum(axis=1)
            assert batch.shape[1] == max(lengths.max(), 1)
            # padding only at the end of a row
            assert np.all((batch != -1) == (np.arange(batch.shape[1]) < lengths[:, None]))
            seen.append(indices_to_csr(batch, N_MOVIES))
        assert _row_sets(sp.vstack(seen).tocsr()) == _row_sets(clicks)


def test_order_is_seeded_and_changes_each_epoch(clicks):
    first, second = padded_batches(clicks, 16, seed=1), padded_batches(clicks, 16, seed=1)
    epochs = [_epoch(first), _epoch(first)]
    assert all(np.array_equal(a, b) for a, b in zip(epochs[0], _epoch(second)))
    assert all(np.array_equal(a, b) for a, b in zip(epochs[1], _epoch(second)))
    assert not all(np.array_equal(a, b) for a, b in zip(epochs[0], epochs[1]))
    other_seed = _epoch(padded_batches(clicks, 16, seed=2))
    assert not all(np.array_equal(a, b) for a, b in zip(epochs[0], other_seed))


def test_drop_remainder_and_unshuffled_order(clicks):
    assert {len(b) for b in _epoch(padded_batches(clicks, 10, seed=0, drop_remainder=True))} == {10}
    in_order = np.concatenate([indices_to_csr(b, N_MOVIES).toarray() for b in
                               _epoch(padded_batches(clicks, 10, seed=0, shuffle=False))])
    np.testing.assert_array_equal(in_order, clicks.toarray())  # 103 x 30: small enough to compare whole


def test_users_without_clicks_are_one_padding_column():
    empty = sp.csr_matrix((4, N_MOVIES), dtype=np.float32)
    (batch,) = _epoch(padded_batches(empty, 8, seed=0))
    np.testing.assert_array_equal(batch, -np.ones((4, 1), np.int64))


def test_bad_inputs_are_named(clicks):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        padded_batches(clicks, 0, seed=0)
    with pytest.raises(ValueError, match="scipy.sparse"):
        padded_batches(clicks.toarray(), 10, seed=0)
