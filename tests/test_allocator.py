"""The package picks TensorFlow's pooling CPU allocator when imported, unless the user chose one."""

import os
import subprocess
import sys

import pytest

from hvae_tf import allocator

# TensorFlow imported first, as a user's script would, then the package; CPU allocator statistics
# exist only for the pooling (BFC) allocator.
PROBE = """
import tensorflow as tf
import hvae_tf
tf.ones([256, 256])
try:
    tf.config.experimental.get_memory_info("CPU:0")
    print("pooled")
except ValueError:
    print("default")
"""


@pytest.mark.parametrize("user_value, expected", [(None, "pooled"), ("false", "default")])
def test_importing_the_package_pools_cpu_memory_unless_the_user_said_otherwise(user_value, expected):
    env = {k: v for k, v in os.environ.items() if k != allocator.VARIABLE}
    if user_value is not None:
        env[allocator.VARIABLE] = user_value
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    # Where TensorFlow turns its oneDNN optimisations on (by default on some CPUs), oneDNN's own
    # CPU allocator pools large blocks whatever the variable says; off, the variable decides.
    env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == expected
