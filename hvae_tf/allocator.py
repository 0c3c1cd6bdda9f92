"""TensorFlow's CPU memory allocator: the pooling one, chosen before TensorFlow allocates anything.

TensorFlow's default CPU allocator passes each tensor to malloc, and glibc serves every block above
32 MB with fresh pages from the kernel and returns them when the block is freed. A [1,000, 20,108]
float32 batch of scores is 80 MB, and a training batch's logits at that catalogue 40 MB, so every
batch pays for its pages again in page faults, and so does each copy of it. The BFC allocator,
which TensorFlow uses on GPUs and offers on the CPU through TF_CPU_ALLOCATOR_USE_BFC, keeps freed
memory for the next batch, at the price of holding the process's peak. TensorFlow reads the
variable when it makes its CPU allocator, at the first tensor, so setting it on importing this
package is in time unless the process has already run TensorFlow ops; a value the user set wins.
Where TensorFlow's oneDNN optimisations are on (its default on some CPUs; TF_ENABLE_ONEDNN_OPTS=0
turns them off), oneDNN's CPU allocator already pools large blocks and the variable changes
nothing."""

from __future__ import annotations

import os

VARIABLE = "TF_CPU_ALLOCATOR_USE_BFC"


def prefer_pooled_cpu_allocator() -> None:
    os.environ.setdefault(VARIABLE, "true")
