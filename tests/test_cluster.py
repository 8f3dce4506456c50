"""The job scripts of jobs/ under a real SLURM (project addition): a one-node
cluster on localhost (tests/slurm_cluster.py), real array tasks, real requeues, real signals
sent by the scheduler, and the real trainer and aligner.

Needs root and Debian's slurm-wlm and munge packages (.ci/run installs them); elsewhere the
tests are skipped with the reason. Run alone with `pytest -m cluster`.
"""
import os
import re
import sys

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

import align_faces as af
from conftest import REPO, checkpoint_steps
from slurm_cluster import Cluster

pytestmark = pytest.mark.cluster

JOBS = os.path.join(REPO, "jobs")
# The smallest training the demo faces allow: 56 of 64 images train, 7 steps an epoch.
EPOCHS, STEPS_PER_EPOCH = 8, 7
TINY_TRAINING = ["--demo_images", "64", "--image_size", "16", "--batch_size", "8",
                 "--gf_dim", "4", "--df_dim", "4", "--z_dim", "8", "--ckpt_freq", "5",
                 "--sample_freq", "1000", "--seed", "3", "--eval_every_epoch=false"]
PROGRESS = re.compile(r"^Epoch \[ *(\d+)\] \[ *(\d+)/ *(\d+)\]", re.M)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running one-node cluster; skipped (failed on CI) with the reason if it cannot start."""
    if os.geteuid() != 0:
        pytest.skip("the SLURM daemons of these tests run as root")
    slurm = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        why_not = slurm.start()
        if why_not:
            message = "could not start a one-node SLURM cluster: " + why_not
            pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
        yield slurm
    finally:
        slurm.stop()


def submit(cluster, script, *options, args=(), **env):
    """Submit jobs/`script` with sbatch `options` and the script's `args` from the repository
    folder, as a user would, with `env` added to the environment and this Python as the
    scripts' PYTHON; return the job id."""
    env = dict(env, PYTHON=sys.executable)
    return cluster.sbatch(*options, os.path.join(JOBS, script), *args, env=env, cwd=REPO)


def read(path):
    with open(path, errors="replace") as file:
        return file.read()


def log_has(path, pattern, count=1):
    """Whether the log at `path` exists and matches `pattern` at least `count` times."""
    return os.path.exists(path) and len(re.findall(pattern, read(path), re.M)) >= count


def steps_trained(log):
    """The global step of every progress line of a training log, in order."""
    return [int(epoch) * int(batches) + int(batch) + 1
            for epoch, batch, batches in PROGRESS.findall(log)]


def face_photos(folder):
    """Five photos of the astronaut's face, varied, and one photo with no face; return the
    names of those with a face and of the one without."""
    folder.mkdir()
    face = skimage.data.astronaut()
    photos = {"original.png": face, "flipped.png": face[:, ::-1],
              "smaller.png": cv2.resize(face, None, fx=0.8, fy=0.8),
              "rotated.png": cv2.warpAffine(face, cv2.getRotationMatrix2D((256, 256), 12, 1.0),
                                            (512, 512), borderMode=cv2.BORDER_REFLECT),
              "sub/darker.jpg": (face * 0.6).astype(np.uint8)}
    (folder / "sub").mkdir()
    for name, rgb in photos.items():
        Image.fromarray(np.ascontiguousarray(rgb)).save(folder / name)
    Image.new("RGB", (300, 300), (90, 120, 150)).save(folder / "no_face.png")
    return sorted(photos), "no_face.png"


def test_the_alignment_array_job_aligns_every_photo_once(cluster, tmp_path):
    with_face, without = face_photos(tmp_path / "raw")
    aligned = tmp_path / "aligned"
    folders = {"RAW": str(tmp_path / "raw"), "ALIGNED": str(aligned)}
    array = submit(cluster, "align_faces.sbatch", "--array=1-2", "--cpus-per-task=1",
                   "--mem=1G", "--chdir", str(tmp_path), "--output", "align_%a.out",
                   args=["--upsample", "0"], **folders)
    merge = submit(cluster, "align_faces_merge.sbatch", "--dependency=afterany:" + array,
                   "--chdir", str(tmp_path), "--output", "merge.out", **folders)
    tasks = cluster.wait_ended(array)
    assert [task["JobState"] for task in tasks] == ["COMPLETED"] * 2, tasks
    assert cluster.wait_ended(merge)[0]["JobState"] == "COMPLETED", read(tmp_path / "merge.out")
    logs = [read(tmp_path / ("align_%d.out" % task)) for task in (1, 2)]
    for task, log in enumerate(logs, 1):
        assert re.search(r"node \S+, 1 workers .*, shard %d/2" % task, log), log
        assert "\r" not in log
    # Every photo once: its crop, or (no face) its line in exactly one shard's report.
    assert sum(int(re.search(r"^aligned: (\d+)", log, re.M)[1]) for log in logs) == 5
    assert sorted(os.listdir(aligned)) == sorted(
        [af.output_name(name) for name in with_face] +
        ["align_faces_report.txt", "align_faces_report_shard1of2.txt",
         "align_faces_report_shard2of2.txt"])  # and no temp files
    merged = read(aligned / "align_faces_report.txt")
    assert merged.count("# from align_faces_report_shard") == 2
    assert len(re.findall(r"^no face\t%s\t" % without, merged, re.M)) == 1, merged


def test_a_training_job_stopped_twice_by_the_scheduler_resumes_and_finishes(cluster, tmp_path):
    log = str(tmp_path / "train.out")
    job = submit(cluster, "train_cpu.sbatch", "--cpus-per-task=2", "--mem=2G", "--time=10",
                 "--chdir", str(tmp_path), "--output", log, args=TINY_TRAINING,
                 DATASET="demo", EPOCHS=str(EPOCHS))
    # What Slurm does 120 s before the time limit (--signal=B:USR1@120): USR1 to the shell.
    cluster.wait_for(lambda: log_has(log, r"^Epoch "), "training to start")
    assert cluster.run("scancel", "--signal=USR1", "--batch", job).returncode == 0
    cluster.start_requeued(job, restarts=1)
    # Then a requeue by an administrator (or preemption): SIGTERM to every process.
    cluster.wait_for(lambda: log_has(log, r"resuming at step[\s\S]*^Epoch "), "the resume")
    assert cluster.run("scontrol", "requeue", job).returncode == 0
    cluster.start_requeued(job, restarts=2)
    state = cluster.wait_ended(job)[0]
    output = read(log)
    assert (state["JobState"], state["ExitCode"]) == ("COMPLETED", "0:0"), output[-3000:]
    assert re.findall(r"job %s start (\d+)" % job, output) == ["1", "2", "3"]
    assert len(re.findall(r"node \S+, 2 threads", output)) == 3
    stops = re.findall(r"Stopped at step (\d+); saved a checkpoint", output)
    resumes = re.findall(r"An existing model was found: resuming at step (\d+) \(epoch", output)
    assert len(stops) == 2 and resumes == stops, output[-3000:]
    # Each stop saved the step under way, so no step was trained twice, nor skipped.
    assert steps_trained(output) == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    assert checkpoint_steps(str(tmp_path / "checkpoint"))[-1] == EPOCHS * STEPS_PER_EPOCH
    assert "\r" not in output


def test_a_training_job_with_a_bad_dataset_fails_with_the_reason(cluster, tmp_path):
    log = str(tmp_path / "bad.out")
    job = submit(cluster, "train_cpu.sbatch", "--cpus-per-task=1", "--mem=1G", "--chdir",
                 str(tmp_path), "--output", log, DATASET=str(tmp_path / "no_such_folder"))
    state = cluster.wait_ended(job)[0]
    assert (state["JobState"], state["ExitCode"], state["Restarts"]) == ("FAILED", "1:0", "0")
    errors = [line for line in read(log).splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "no_such_folder" in errors[0], read(log)[-2000:]


def test_a_gpu_job_on_a_node_where_tensorflow_sees_no_gpu_fails_at_once_saying_so(cluster,
                                                                                tmp_path):
    # The GPU script, with its GPU lines overridden to run on this CPU-only node.
    log = str(tmp_path / "gpu.out")
    job = submit(cluster, "train_gpu.sbatch", "--partition=debug", "--gres=none",
                 "--cpus-per-task=1", "--mem=1G", "--chdir", str(tmp_path), "--output", log,
                 DATASET="demo")
    state = cluster.wait_ended(job)[0]
    assert (state["JobState"], state["ExitCode"], state["Restarts"]) == ("FAILED", "1:0", "0")
    errors = [line for line in read(log).splitlines() if line.startswith("error: ")]
    assert errors == [line for line in errors if "--device gpu" in line] and len(errors) == 1
    assert not os.path.exists(tmp_path / "checkpoint")  # nothing made, nothing trained
