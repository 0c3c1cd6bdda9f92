"""tf.data input: each user's clicked movie indices as a padded int64 batch (-1 = padding).

Models build their sparse input from these batches themselves: Keras 3's `fit` on `tf.SparseTensor`
batches fails under `MirroredStrategy`, padded index batches do not.
The click matrix is held once as a RaggedTensor; each batch gathers its rows, so an epoch costs
a shuffle of row numbers, not of the rows, and batches are only as wide as their longest user.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

PADDING = -1


def padded_batches(
    matrix: sp.csr_matrix,
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of [batch, longest row in batch] int64 movie indices, every row once per epoch.

    The order is reshuffled each epoch; for a given `seed` (and TF global seed, if one is set) the
    sequence of epoch orders is the same every run. A row without clicks is all padding.
    """
    rows = _ragged_rows(matrix, batch_size)
    order = tf.data.Dataset.range(matrix.shape[0])
    if shuffle:
        order = order.shuffle(max(matrix.shape[0], 1), seed=seed, reshuffle_each_iteration=True)
    batches = order.batch(batch_size, drop_remainder=drop_remainder)
    return batches.map(lambda row: _padded(tf.gather(rows, row)),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def _ragged_rows(matrix: sp.csr_matrix, batch_size: int) -> tf.RaggedTensor:
    if not sp.issparse(matrix) or matrix.ndim != 2:
        raise ValueError(f"expected a scipy.sparse users x movies matrix, got {type(matrix).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    matrix = sp.csr_matrix(matrix)
    return tf.RaggedTensor.from_row_splits(matrix.indices.astype(np.int64),
                                           matrix.indptr.astype(np.int64), validate=False)


def _padded(rows: tf.RaggedTensor) -> tf.Tensor:
    """Dense [batch, width] with PADDING; width >= 1 so an all-empty batch still has a column."""
    width = tf.maximum(rows.bounding_shape(axis=1), 1)
    return rows.to_tensor(default_value=tf.constant(PADDING, tf.int64),
                          shape=tf.stack([tf.constant(-1, tf.int64), width]))
