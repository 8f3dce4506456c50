"""Part 5: gantut_trainer.py run as a real subprocess on tiny real datasets."""
import csv
import glob
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

from conftest import (REPO, TINY, assert_refused, checkpoint_steps, flag_errors, interrupt_when,
                      run_trainer, write_images)

PROGRESS = re.compile(r"^Epoch \[ *(\d+)\] \[ *(\d+)/ *(\d+)\] time: [\d.]+, d_loss: [\d.]+, "
                      r"g_loss: [\d.]+", re.M)


def progress(output):
    """(epoch, batch) of every progress line."""
    return [(int(e), int(i)) for e, i, _ in PROGRESS.findall(output)]


# These tests read the shared model of conftest.py (`trained_model`): 24 images of 16x16,
# batch 4 -> 6 steps per epoch, 2 epochs, --sample_freq 4, --ckpt_freq 5, --summary_freq 1.


def test_progress_line_per_step_with_both_losses(trained_model):
    assert progress(trained_model.stdout) == [(e, i) for e in range(2) for i in range(6)]
    assert "img/s, ETA" in trained_model.stdout


def test_sample_grids_every_sample_freq_steps_and_each_epoch(trained_model):
    work = trained_model.folder
    names = sorted(os.listdir(work / "samples"))
    # steps 4, 8 and 12 fall on epoch 0 batch 3, epoch 1 batches 1 and 5
    assert names == ["epoch_00.png", "epoch_01.png", "progress.gif", "real_samples.png",
                     "train_00-0003.png", "train_01-0001.png", "train_01-0005.png"]
    with Image.open(work / "samples" / "train_00-0003.png") as grid:
        assert grid.size == (8 * 16, 8 * 16)  # an 8x8 grid of 16x16 samples


def test_checkpoints_every_ckpt_freq_and_each_epoch(trained_model):
    work = trained_model.folder
    assert checkpoint_steps(str(work / "checkpoint")) == [5, 6, 10, 12]


def test_event_files_hold_every_summary_name_and_the_graph(trained_model):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    work = trained_model.folder
    events = EventAccumulator(str(work / "logs"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"d_loss_real", "d_loss_fake", "g_loss", "d_loss"} <= set(tags["scalars"])
    assert {"z", "d", "d_"} <= set(tags["histograms"])
    assert any(tag.startswith("G/") for tag in tags["images"])
    assert tags["graph"]
    assert [e.step for e in events.Scalars("g_loss")] == list(range(1, 13))


def test_a_second_run_resumes_at_the_right_step_and_epoch_with_the_same_sample_noise(model_copy):
    work = model_copy  # the other tests read the trained run as it was left
    sample_z = tf.train.load_variable(tf.train.latest_checkpoint(str(work / "checkpoint")),
                                      "state/sample_z")
    result = run_trainer(str(work), "--dataset", "faces", "--epoch", "3", "--sample_freq", "4",
                         "--ckpt_freq", "5", "--summary_freq", "1", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "An existing model was found" in result.stdout
    assert progress(result.stdout) == [(2, i) for i in range(6)]
    assert checkpoint_steps(str(work / "checkpoint"))[-1] == 18
    # Nothing is decoded again: the image cache of the first run is used.
    assert "decoding images" not in result.stderr
    # The grids go on showing the same noise vectors.
    assert np.array_equal(sample_z, tf.train.load_variable(
        tf.train.latest_checkpoint(str(work / "checkpoint")), "state/sample_z"))


def test_ctrl_c_saves_a_checkpoint_and_the_next_run_resumes_there(tmp_path):
    write_images(str(tmp_path / "faces"), 40, 16)
    args = ["--dataset", "faces", "--epoch", "1000", "--ckpt_freq", "100000",
            "--sample_freq", "100000", *TINY]
    # Ctrl-C once training is well under way.
    returncode, output = interrupt_when("gantut_trainer.py", str(tmp_path), args,
                                        lambda out: len(progress(out)) >= 13, signal.SIGINT)
    assert returncode == 0, output[-2000:]
    done = progress(output)
    step = checkpoint_steps(str(tmp_path / "checkpoint"))[-1]
    assert step == len(done) >= 13
    last_epoch, last_batch = done[-1]

    result = run_trainer(str(tmp_path), *args[:3], "2" if last_epoch < 1 else
                         str(last_epoch + 1), *args[4:])
    first = progress(result.stdout)[0]
    expected = (last_epoch, last_batch + 1) if last_batch + 1 < 10 else (last_epoch + 1, 0)
    assert first == expected
    # The loss log carries every step once across the interruption.
    with open(tmp_path / "logs" / "losses.csv") as table:
        steps = [int(row["step"]) for row in csv.DictReader(table)]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) > step


def test_flags_that_make_no_sense_are_refused_by_name():
    bad = [("epoch", "-1"), ("batch_size", "0"), ("c_dim", "2"), ("learning_rate", "0.0"),
           ("holdout", "1.0"), ("image_size", "50")]
    errors = flag_errors("gantut_trainer", *[["--%s=%s" % case] for case in bad])
    for (flag, value), error in zip(bad, errors):
        assert error.startswith("error: flag --%s=%s: --%s" % (flag, value, flag)), error
    assert "Nearest valid: 48 or 56" in errors[-1]
    assert flag_errors("gantut_trainer", ["--epoch=1"], ["--no_such_flag=1"]) == [
        None, "error: Unknown command line flag 'no_such_flag' (--help lists the flags)"]


def test_the_trainer_refuses_a_bad_flag_in_one_line_before_making_anything(tmp_path):
    result = run_trainer(str(tmp_path), "--dataset", "x", "--epoch=-1")
    assert_refused(result, "error: flag --epoch=-1: --epoch must be at least 1")
    assert not os.listdir(tmp_path)


def test_help_lists_every_flag():
    result = subprocess.run([sys.executable, os.path.join(REPO, "gantut_trainer.py"), "--help"],
                            capture_output=True, text=True)
    for flag in ("epoch", "learning_rate", "beta1", "train_size", "batch_size", "image_size",
                 "dataset", "checkpoint_dir", "sample_dir", "logs_dir", "sample_freq",
                 "ckpt_freq", "threads", "seed", "is_crop", "max_to_keep"):
        assert re.search(r"--(\[no\])?%s:" % flag, result.stdout), flag


@pytest.mark.parametrize("case", ["missing", "empty", "too_few", "wrong_size"])
def test_unusable_datasets_stop_before_any_graph_with_a_message(tmp_path, case):
    folder = tmp_path / "faces"
    if case != "missing":
        folder.mkdir()
    if case == "too_few":
        write_images(str(folder), 3, 16)
    if case == "wrong_size":
        write_images(str(folder), 8, (20, 24))
    result = run_trainer(str(tmp_path), "--dataset", "faces", "--epoch", "1", *TINY)
    assert result.returncode != 0
    assert "faces" in result.stderr
    assert {"missing": "does not exist", "empty": "holds no", "too_few": "--batch_size",
            "wrong_size": "--is_crop"}[case] in result.stderr
    assert not os.path.exists(tmp_path / "logs" / "events") and \
        not glob.glob(str(tmp_path / "logs" / "*"))


def test_bad_files_are_skipped_and_odd_modes_and_sizes_train_with_is_crop(tmp_path):
    folder = tmp_path / "faces"
    write_images(str(folder), 6, (30, 20))
    write_images(str(folder / "gray"), 2, 16, mode="L")
    write_images(str(folder / "rgba"), 2, 16, mode="RGBA")
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = run_trainer(str(tmp_path), "--dataset", "faces", "--epoch", "1", "--is_crop",
                         *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 unreadable image(s)" in result.stderr
    assert "10 images from" in result.stdout
    assert progress(result.stdout) == [(0, 0), (0, 1)]


def test_grayscale_model_trains(tmp_path):
    write_images(str(tmp_path / "faces"), 8, 16)
    result = run_trainer(str(tmp_path), "--dataset", "faces", "--epoch", "1", "--c_dim", "1",
                         *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    with Image.open(tmp_path / "samples" / "epoch_00.png") as grid:
        assert grid.mode == "L"


def test_quality_figures_each_epoch_and_for_a_checkpoint(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    write_images(str(tmp_path / "faces"), 24, 16)
    result = run_trainer(str(tmp_path), "--dataset", "faces", "--epoch", "2", "--holdout", "0.25",
                         *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert progress(result.stdout)[-1] == (1, 3)  # 6 images held out: 18 train, 4 batches
    with open(tmp_path / "logs" / "metrics.csv") as table:
        rows = list(csv.DictReader(table))
    assert [(r["epoch"], r["step"]) for r in rows] == [("0", "4"), ("1", "8")]
    for row in rows:
        assert 0 <= float(row["face_rate"]) <= 1 and float(row["face_fd"]) >= 0
        assert float(row["swd"]) > 0
    events = EventAccumulator(str(tmp_path / "logs"))
    events.Reload()
    assert [e.step for e in events.Scalars("metrics/face_fd")] == [4, 8]

    again = run_trainer(str(tmp_path), "--train=False", "--evaluate", "--dataset", "faces",
                        "--holdout", "0.25")
    assert again.returncode == 0, again.stderr[-3000:]
    with open(tmp_path / "logs" / "metrics.csv") as table:
        rows = list(csv.DictReader(table))
    assert [(r["epoch"], r["step"]) for r in rows][-1] == ("1", "8")
    assert len(rows) == 3


@pytest.mark.parametrize("fused", ["--fused_bn", "--nofused_bn"])
def test_both_batch_norm_kernels_train_and_say_so_and_share_checkpoints(tmp_path, fused):
    write_images(str(tmp_path / "faces"), 8, 16)
    result = run_trainer(str(tmp_path), "--dataset", "faces", "--epoch", "1", fused,
                         "--noeval_every_epoch", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    chosen = "on" if fused == "--fused_bn" else "off"
    assert re.search(r"^ \[\*\] speed: oneDNN kernels on, bfloat16 (on|off), fused batch norm "
                     + chosen + r", float16 off \(defaults for this machine: ", result.stdout,
                     re.M)
    assert progress(result.stdout) == [(0, 0), (0, 1)]
    other = "--nofused_bn" if fused == "--fused_bn" else "--fused_bn"
    samples = run_trainer(str(tmp_path), "--train=False", other, "--n_samples", "4")
    assert samples.returncode == 0, samples.stderr[-3000:]
