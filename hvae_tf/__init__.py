"""Hybrid-VAE collaborative filtering on TensorFlow/Keras."""
__version__ = "0.1.0"
