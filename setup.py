"""hvae-tf: Hybrid-VAE collaborative filtering on TensorFlow/Keras."""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "tensorflow>=2.16,<2.22",
    # TF Serving's PredictionLog protos, for the warm-up requests in every export (tensorflow's range).
    "tensorflow-serving-api>=2.16,<2.22",
    "keras>=3.3",
    "tensorflow-datasets>=4.9.4",
    # tensorflow-datasets imports it at run time but does not declare it.
    "importlib_resources",
    # Keras' TensorBoard callback and our log reader need it; TF no longer pulls it in everywhere.
    "tensorboard>=2.16",
    "numpy>=1.26",
    "pandas>=2.1",
    "scipy>=1.11",
    # Tokenisers that need no downloaded data (regexp, Treebank).
    "nltk>=3.8",
    # Word2Vec training and loading pretrained word vectors.
    "gensim>=4.3",
    "matplotlib>=3.8",
    # t-SNE and k-means for the embedding pictures; written by hand they would be slower and wrong.
    "scikit-learn>=1.3",
    # An open category lexicon that stands in for LIWC, which is proprietary.
    "empath>=0.89",
    # Progress bars on long feature extraction and data work.
    "tqdm>=4.66",
    # Peak-memory readings in the benchmarks.
    "psutil>=5.9",
    # evaluate.py tune: TPE sampling, median pruning, a SQLite study that survives a kill; no hand-made loop.
    "optuna>=3.5",
]

setup(
    name="hvae-tf",
    version="0.1.0",
    description="Hybrid variational autoencoders for collaborative filtering (TensorFlow/Keras)",
    python_requires=">=3.10",
    packages=find_packages(include=["hvae_tf", "hvae_tf.*", "tf_datasets", "tf_datasets.*"]),
    package_data={"tf_datasets.hvae_movielens": ["checksums.tsv", "*.md"]},
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "test": [
            "pytest>=7.4",
            "pytest-timeout>=2.2",
            # Two test processes for two cores: most of the suite's time is single-threaded Python
            # and the start-up of the train.py / evaluate.py processes it launches, so two workers
            # take about half the time of one (the README's test command passes -n 2).
            "pytest-xdist>=3.5",
            # tfds.testing imports dill (tensorflow-datasets does not declare it).
            "dill",
            # Checks the layer contract in .importlinter (each layer imports only those below);
            # a hand-written import scan would miss imports inside functions and re-exports.
            "import-linter>=2.1",
            # Pyflakes' errors, import order and bugbear in one fast tool (rules in ruff.toml).
            "ruff>=0.5",
        ],
        # CUDA libraries for TensorFlow on Linux GPUs.
        "gpu": ["tensorflow[and-cuda]>=2.16,<2.22"],
    },
)
