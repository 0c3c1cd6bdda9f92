"""Train a Standard-VAE or Hybrid-VAE: `python train.py --features genome --approach 1`."""

import os
import sys

from hvae_tf.config import parse_args


def main(argv=None) -> int:
    cfg = parse_args(argv)  # before TensorFlow loads: a wrong flag is reported at once
    # TensorFlow's C++ start-up notes (CPU features, no CUDA driver) are not the run's business;
    # errors still show. An explicit TF_CPP_MIN_LOG_LEVEL wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from hvae_tf.training.run import train

    try:
        train(cfg)
    # Errors of the input (flags, files, data, the network): a message, not a traceback.
    except (ValueError, OSError, FloatingPointError) as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
