"""Hybrid-VAE collaborative filtering on TensorFlow/Keras."""

from hvae_tf.allocator import prefer_pooled_cpu_allocator

prefer_pooled_cpu_allocator()

__version__ = "0.1.0"
