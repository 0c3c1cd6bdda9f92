import numpy as np
import pytest

from hvae_tf.analysis.curves import plot_training_curves, read_scalars


def keras_logs(log_dir, epochs):
    """Event files exactly as our training run writes them: Keras' TensorBoard callback, with the
    ranking callback's val_ metrics in `logs` (they go to the validation/ folder)."""
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    callback = keras.callbacks.TensorBoard(log_dir=str(log_dir), update_freq="epoch")
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, logs in epochs:
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, dict(logs))
    callback.on_train_end()


def test_reads_train_and_validation_scalars_and_plots(tmp_path):
    logs = tmp_path / "logs"
    keras_logs(logs, [
        (e, {"loss": 10.0 - e, "kl_loss": 0.5 * e, "val_ndcg_100": 0.1 * (e + 1)}) for e in range(3)
    ])
    series = read_scalars(logs)
    assert set(series) == {"train", "validation"}
    assert {"epoch_loss", "epoch_kl_loss", "epoch_learning_rate"} <= set(series["train"])
    assert "keras" not in series["train"]  # the model-config text summary is not a curve
    steps, values = series["train"]["epoch_loss"]
    np.testing.assert_array_equal(steps, [0, 1, 2])
    np.testing.assert_allclose(values, [10.0, 9.0, 8.0])
    np.testing.assert_allclose(series["validation"]["epoch_ndcg_100"][1], [0.1, 0.2, 0.3], rtol=1e-6)

    out = plot_training_curves(logs, tmp_path / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resumed_run_keeps_the_last_value_of_a_repeated_epoch(tmp_path):
    logs = tmp_path / "logs"
    keras_logs(logs, [(0, {"loss": 5.0}), (1, {"loss": 4.0})])
    keras_logs(logs, [(1, {"loss": 3.5}), (2, {"loss": 3.0})])  # resumed from epoch 1
    steps, values = read_scalars(logs)["train"]["epoch_loss"]
    np.testing.assert_array_equal(steps, [0, 1, 2])
    np.testing.assert_allclose(values, [5.0, 3.5, 3.0])


def test_missing_or_empty_log_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_scalars(tmp_path / "nowhere")
    (tmp_path / "train").mkdir()
    with pytest.raises(ValueError, match="no event files"):
        read_scalars(tmp_path)
