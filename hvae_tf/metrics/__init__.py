"""Ranking metrics of the paper and of Liang et al.: Recall@R and NDCG@R."""

from hvae_tf.metrics.ranking import (  # noqa: F401
    ndcg_at_k,
    padded_indices,
    rank_top_k,
    recall_at_k,
    score_users,
    summarize,
)
