"""Linear KL annealing schedule."""

import numpy as np
import pytest
import tensorflow as tf

from hvae_tf.models.annealing import LinearKLAnnealing


def test_ramps_linearly_then_holds_at_the_cap():
    schedule = LinearKLAnnealing(anneal_steps=200, cap=0.2)
    got = [float(schedule(step)) for step in (0, 10, 20, 40, 100, 10**6)]
    np.testing.assert_allclose(got, [0.0, 0.05, 0.1, 0.2, 0.2, 0.2], rtol=1e-6)


def test_accepts_an_int64_variable_step():
    step = tf.Variable(30, dtype=tf.int64)
    assert float(LinearKLAnnealing(anneal_steps=100, cap=1.0)(step)) == pytest.approx(0.3)


def test_zero_steps_means_the_cap_from_the_start():
    assert float(LinearKLAnnealing(anneal_steps=0, cap=0.7)(0)) == pytest.approx(0.7)


@pytest.mark.parametrize("kwargs", [dict(anneal_steps=-1), dict(anneal_steps=2.5), dict(cap=-0.1)])
def test_refuses_bad_settings(kwargs):
    with pytest.raises(ValueError):
        LinearKLAnnealing(**kwargs)
