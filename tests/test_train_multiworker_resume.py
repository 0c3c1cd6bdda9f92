"""A preempted two-worker MultiWorkerMirroredStrategy job: worker 1 is killed with SIGKILL mid-way,
the chief then hangs on the collectives and is killed too; the same command on both resumes from the
chief's backup (every worker restores it) and ends with the metrics of an uninterrupted job."""

import json
import re
import signal
import subprocess
import sys
import time

import pytest
from test_train_distributed import REPO, free_ports, python_env, small_args

pytestmark = pytest.mark.slow  # four jobs of two fresh TensorFlow processes each
EPOCHS = 3
TIMEOUT_S = 300
TOLERANCE = 1e-6

# Worker 1 of the first job: dies by SIGKILL when epoch 2 begins, once the chief has backed up
# epoch 1, as a preempted machine would.
DIES_IN_EPOCH_2 = r"""
import json, os, signal, sys, time
from pathlib import Path
sys.path.insert(0, os.getcwd())
from hvae_tf.training import callbacks
import train as script

backup = Path(sys.argv[1]) / "backup" / "training_metadata.json"
replay = callbacks.ReplayEpochRandomness.on_epoch_begin

def on_epoch_begin(self, epoch, logs=None):
    if epoch == 1:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if json.loads(backup.read_text())["epoch"] >= 1:
                    break
            except (FileNotFoundError, ValueError):
                pass
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)
    replay(self, epoch, logs)

callbacks.ReplayEpochRandomness.on_epoch_begin = on_epoch_begin
sys.exit(script.main(sys.argv[2:]))
"""


def start_job(argv, tmp_path, name, worker1_code=None):
    cluster = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        scratch = tmp_path / f"{name}-tmp{index}"
        scratch.mkdir(exist_ok=True)
        tf_config = json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})
        command = [sys.executable, "train.py", *argv]
        if index == 1 and worker1_code is not None:
            command = [sys.executable, "-c", worker1_code, argv[argv.index("--run-dir") + 1], *argv]
        processes.append(subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
            env=python_env(TF_CONFIG=tf_config, TMPDIR=str(scratch))))
    return processes


def finish(processes, timeout=TIMEOUT_S) -> list[str]:
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=max(1, deadline - time.monotonic()))[0])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return outputs


@pytest.fixture(scope="module")
def jobs(generated_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("multiworker-resume")

    def argv(run):
        return small_args(generated_data_dir, root / run, root / f"saved-{run}", "--strategy",
                          "multiworker", "--epochs", str(EPOCHS), "--batch-size", "32", "--verbose", "2",
                          "--backup-every", "0")

    chief, worker1 = start_job(argv("preempted"), root, "first", DIES_IN_EPOCH_2)
    worker1.communicate(timeout=TIMEOUT_S)
    killed = worker1.returncode
    time.sleep(2)  # the chief is now waiting on a peer that is gone
    chief.send_signal(signal.SIGKILL)
    chief.wait()
    finished_before_restart = (root / "preempted" / "metrics.json").exists()

    resumed = finish(start_job(argv("preempted"), root, "second"))
    finish(start_job(argv("uninterrupted"), root, "reference"))  # read back from its metrics.json
    return {
        "killed": killed, "finished_before_restart": finished_before_restart, "resumed": resumed,
        "metrics": json.loads((root / "preempted" / "metrics.json").read_text()),
        "reference": json.loads((root / "uninterrupted" / "metrics.json").read_text()),
        "validation": json.loads((root / "preempted" / "validation.json").read_text()),
    }


def test_worker_was_killed_before_the_job_finished(jobs):
    assert jobs["killed"] == -signal.SIGKILL
    assert not jobs["finished_before_restart"]


def test_every_worker_resumes_from_the_chiefs_backup(jobs):
    for output in jobs["resumed"]:
        started = [int(n) for n in re.findall(rf"Epoch (\d+)/{EPOCHS}", output)]
        assert started and started[0] == 2 and started[-1] == EPOCHS, output[-3000:]


def test_the_resumed_job_ends_as_an_uninterrupted_one(jobs):
    metrics, reference = jobs["metrics"], jobs["reference"]
    assert [h["epoch"] for h in metrics["history"]] == list(range(1, EPOCHS + 1))
    assert jobs["validation"] == metrics["history"]
    for mine, theirs in zip(metrics["history"], reference["history"], strict=True):
        for key in mine:
            assert mine[key] == pytest.approx(theirs[key], abs=TOLERANCE), (mine["epoch"], key)
    assert metrics["best_epoch"] == reference["best_epoch"]
