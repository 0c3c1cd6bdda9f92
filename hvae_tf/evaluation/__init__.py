"""Comparing runs: paired significance tests on per-user metrics, and the paper-shaped tables."""

from hvae_tf.evaluation.significance import (  # noqa: F401
    PairedTest,
    PerUser,
    compare,
    load_per_user,
    paired_tests,
    save_per_user,
)
from hvae_tf.evaluation.tables import (  # noqa: F401
    Result,
    Table,
    model_label,
    results_table,
    table1,
    table2,
)
