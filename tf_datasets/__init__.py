"""Custom TFDS builders of hvae-tf.

Importing this package is cheap: a builder module (which imports tensorflow_datasets and registers
the builder with TFDS) is imported only when first used, e.g. `tf_datasets.hvae_movielens.HvaeMovielens`
or `import tf_datasets.hvae_movielens.hvae_movielens`, so that a command can parse its flags and
read the release table before TensorFlow loads.
"""
