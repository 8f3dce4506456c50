"""Fault injection: kill, interrupt, starve and confuse training and alignment with real
processes and real signals, and check that nothing is lost (project addition).

Run alone with `pytest -m faults`. The summary line `faults: kills=... resumed=...
lost_steps_max=... corrupt=...` is printed at the end of the run. The training series kills
KILLS times (8; `GANTUT_FAULT_KILLS=20 python -m pytest -m faults` for a longer hunt), the
alignment series, whose restarts are cheaper, half again as often.
"""
import glob
import os
import random
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

from conftest import (FAULT_STATS, REPO, TINY, checkpoint_steps, run_trainer, sigint_from,
                      write_images)
from extras.data.dataset import load_dataset
from test_trainer import progress

pytestmark = pytest.mark.faults

STEPS_PER_EPOCH = 6  # 24 images in batches of 4
KILLS = int(os.environ.get("GANTUT_FAULT_KILLS", 8))  # SIGKILLs of the training series
ALIGN_KILLS = 3 * KILLS // 2
CKPT_FREQ = 2  # the training series' --ckpt_freq


def start_trainer(cwd, *args, sigint=signal.SIG_DFL):
    """The trainer, started with SIGINT's handler `sigint` (see conftest.sigint_from)."""
    return subprocess.Popen([sys.executable, os.path.join(REPO, "gantut_trainer.py")] +
                            list(args), cwd=str(cwd), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=sigint_from(sigint))


def read_until_steps(proc, count):
    """Read the trainer's output until `count` progress lines have appeared; return it."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if len(progress("".join(lines))) >= count:
            break
    return "".join(lines)


def step_number(epoch_batch):
    epoch, batch = epoch_batch
    return epoch * STEPS_PER_EPOCH + batch + 1


def unreadable_images(folder):
    """Image files under `folder` that do not decode completely."""
    bad = []
    for path in glob.glob(os.path.join(str(folder), "**", "*.png"), recursive=True):
        try:
            with Image.open(path) as img:
                img.load()
        except OSError:
            bad.append(path)
    return bad


@pytest.fixture
def faces(tmp_path):
    write_images(str(tmp_path / "faces"), 4 * STEPS_PER_EPOCH, 16)
    return tmp_path


def test_training_killed_at_random_moments_resumes_and_loses_nothing(faces):
    rng = random.Random(0)
    args = ["--dataset", "faces", "--epoch", "1000", "--ckpt_freq", str(CKPT_FREQ),
            "--sample_freq", "1", "--summary_freq", "1", "--max_to_keep", "2", *TINY]
    last_printed, first_sample_z = None, None
    for kill in range(KILLS):
        on_disk = checkpoint_steps(str(faces / "checkpoint"))
        proc = start_trainer(faces, *args)
        output = read_until_steps(proc, rng.randint(1, 4))
        # Land anywhere: in a step, in a checkpoint write or in a sample write.
        time.sleep(rng.uniform(0, 0.25))
        proc.kill()
        output += proc.communicate()[0]
        FAULT_STATS["kills"] += 1
        steps = [step_number(p) for p in progress(output)]
        if on_disk:
            # The newest checkpoint on disk, none skipped. One is written while training goes
            # on and is on disk before the next is taken: at most 2 x --ckpt_freq steps lost.
            restored = steps[0] - 1
            assert "Restored" in output and restored == on_disk[-1], output[-2000:]
            FAULT_STATS["resumed"] += 1
            lost = last_printed - restored
            assert 0 <= lost <= 2 * CKPT_FREQ, output[-2000:]
            FAULT_STATS["lost_steps_max"] = max(FAULT_STATS["lost_steps_max"], lost)
        elif last_printed is not None:
            assert steps[0] == 1, output[-2000:]  # nothing written yet: a fresh start
        FAULT_STATS["corrupt"] += output.count("is damaged")
        FAULT_STATS["corrupt"] += len(unreadable_images(faces / "samples"))
        last_printed = steps[-1]
        if first_sample_z is None and checkpoint_steps(str(faces / "checkpoint")):
            first_sample_z = tf.train.load_variable(
                tf.train.latest_checkpoint(str(faces / "checkpoint")), "state/sample_z")
    assert FAULT_STATS["corrupt"] == 0
    # A last, uninterrupted run carries on from the newest checkpoint to the end of its epoch.
    epoch_now = (last_printed - 1) // STEPS_PER_EPOCH
    result = run_trainer(str(faces), *args[:3], str(epoch_now + 1), *args[4:])
    assert result.returncode == 0, result.stderr[-2000:]
    final = tf.train.latest_checkpoint(str(faces / "checkpoint"))
    assert np.array_equal(tf.train.load_variable(final, "state/sample_z"), first_sample_z)
    assert not os.path.exists(faces / "checkpoint" / ".lock")
    assert not glob.glob(str(faces / "samples" / ".*"))  # no temp files left


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_save_a_checkpoint_and_exit_0_quickly(faces, sig):
    proc = start_trainer(faces, "--dataset", "faces", "--epoch", "1000", "--ckpt_freq", "1000",
                         "--sample_freq", "1000", *TINY)
    output = read_until_steps(proc, 3)
    sent = time.time()
    proc.send_signal(sig)
    output += proc.communicate(timeout=30)[0]
    elapsed = time.time() - sent
    assert proc.returncode == 0, output[-2000:]
    assert elapsed < 10
    assert checkpoint_steps(str(faces / "checkpoint")) == [step_number(progress(output)[-1])]


def test_a_trainer_started_with_sigint_ignored_leaves_it_ignored_and_sigterm_still_saves(faces):
    proc = start_trainer(faces, "--dataset", "faces", "--epoch", "1000", "--ckpt_freq", "1000",
                         "--sample_freq", "1000", *TINY, sigint=signal.SIG_IGN)
    output = read_until_steps(proc, 3)
    proc.send_signal(signal.SIGINT)
    output += read_until_steps(proc, 6)  # trains on: as `cmd &` in a script, Ctrl-C is not for it
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    output += proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, output[-2000:]
    assert "SIGINT received" not in output and "SIGTERM received" in output
    assert checkpoint_steps(str(faces / "checkpoint"))[-1] == step_number(progress(output)[-1])


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(faces):
    common = ["--dataset", "faces", "--ckpt_freq", "1000", *TINY]
    assert run_trainer(str(faces), "--epoch", "1", *common).returncode == 0
    result = run_trainer(str(faces), "--epoch", "3", "--learning_rate", "1e30", *common)
    assert result.returncode != 0
    assert "became nan at step 7" in result.stderr or "became inf at step 7" in result.stderr
    assert checkpoint_steps(str(faces / "checkpoint")) == [6]
    path = tf.train.latest_checkpoint(str(faces / "checkpoint"))
    weights = tf.train.load_variable(path, "generator/g_h0_lin/Matrix")
    assert np.all(np.isfinite(weights))


@pytest.fixture
def small_disk(tmp_path):
    """A 160 KiB tmpfs: room for the image cache and about two checkpoints."""
    folder = tmp_path / "small_disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        message = "needs root to mount a small tmpfs: " + mounted.stderr.strip()
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_stops_with_the_folder_named_and_keeps_the_previous_checkpoint(faces,
                                                                                   small_disk):
    full = str(small_disk / "ckpt")
    result = run_trainer(str(faces), "--dataset", "faces", "--epoch", "100", "--ckpt_freq", "1",
                         "--max_to_keep", "0", "--checkpoint_dir", full, *TINY)
    assert result.returncode != 0
    assert "could not write the step" in result.stderr and full in result.stderr
    saved = checkpoint_steps(full)
    assert saved  # some fitted before the disk was full
    generated = run_trainer(str(faces), "--train=False", "--checkpoint_dir", full,
                            "--generated_dir", "from_full")
    assert generated.returncode == 0, generated.stderr[-2000:]
    assert "Restored %s" % os.path.join(full, "DCGAN.model-%d" % saved[-1]) in generated.stdout


def test_a_second_trainer_on_the_same_folder_is_refused_until_the_first_is_gone(faces):
    args = ["--dataset", "faces", "--epoch", "1000", "--sample_freq", "1000", *TINY]
    first = start_trainer(faces, *args)
    read_until_steps(first, 1)
    second = run_trainer(str(faces), *args)
    assert second.returncode != 0
    assert "in use by another run (pid %d" % first.pid in second.stderr
    first.kill()
    first.communicate()
    FAULT_STATS["kills"] += 1
    third = run_trainer(str(faces), "--dataset", "faces", "--epoch", "1", "--sample_freq",
                        "1000", *TINY)
    assert third.returncode == 0, third.stderr[-2000:]
    assert not os.path.exists(faces / "checkpoint" / ".lock")


def png_claiming_size(width, height):
    """A tiny PNG file whose header claims width x height pixels: a decompression bomb."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
            chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_a_hostile_dataset_folder_is_read_without_a_crash(tmp_path, capsys):
    root = tmp_path / "hostile"
    names = ["with space.png", "unicodé 顔.png", "new\nline.png", "plain.png"]
    for i, name in enumerate(names):
        root.mkdir(exist_ok=True)
        write_images(str(tmp_path / ("tmp%d" % i)), 1, 8, seed=i)
        os.replace(str(tmp_path / ("tmp%d" % i) / "img_0000.png"), str(root / name))
    write_images(str(tmp_path / "elsewhere"), 2, 8, seed=9)
    os.symlink(str(tmp_path / "elsewhere"), str(root / "linked"))  # followed
    os.symlink(str(root), str(root / "loop"))  # a link loop: must not trap the walk
    os.symlink(str(root / "missing.png"), str(root / "broken.png"))
    (root / "notes.jpg").write_text("not an image at all")
    (root / "bomb.png").write_bytes(png_claiming_size(30000, 30000))
    started = time.time()
    images = load_dataset(str(root), 8, cache_dir=str(tmp_path / "cache"))
    assert time.time() - started < 60
    assert len(images) == 6  # four odd names, two through the link
    err = capsys.readouterr().err
    for bad in ("broken.png", "notes.jpg", "bomb.png"):
        assert any(bad in line for line in err.splitlines() if line.startswith("warning"))
    assert "decompression bomb" in err
    assert "3 unreadable image(s)" in err


def test_alignment_killed_at_random_moments_resumes_and_aligns_each_photo_once(tmp_path):
    # Imported here: this test is the only one of the file that needs them.
    import skimage.data
    from align_faces import Outcome, output_name
    from extras.utils import TEMP_NAME
    from test_align import SCRIPT, counts_of, pngs, report_lines, save, scaled, shifted

    rng, noise = random.Random(6), np.random.default_rng(6)
    photos, out = tmp_path / "photos", tmp_path / "aligned"
    relative_paths = ["set%d/photo%02d.jpg" % (index % 3, index) for index in range(30)]
    astronaut = skimage.data.astronaut()
    for path in relative_paths:
        dx, dy = noise.integers(-60, 60, 2)
        save(scaled(shifted(astronaut, int(dx), int(dy)), 0.7), photos / path)
    command = [sys.executable, str(SCRIPT), str(photos), "align", "innerEyesAndBottomLip",
               str(out), "--size", "32", "--workers", "2"]

    def files():
        return set(os.listdir(out)) if out.is_dir() else set()

    kills = runs = 0
    while kills < ALIGN_KILLS:
        assert runs < 2 * ALIGN_KILLS, "too many runs ended before they could be killed"
        before = files()
        all_done = len([name for name in before if TEMP_NAME.match(name) is None
                        and name.endswith(".png")]) == len(relative_paths)
        proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        runs += 1
        # Land while the workers write: soon after this run's first new file (a crop or a temp
        # file). Once every photo is aligned, land in the start-up or the report instead.
        while not all_done and proc.poll() is None and not files() - before:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.15))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the main process and its workers
            kills += 1
            FAULT_STATS["kills"] += 1
        proc.wait()
        FAULT_STATS["resumed"] += 1 if runs > 1 else 0
        FAULT_STATS["corrupt"] += len(unreadable_images(out))
    assert FAULT_STATS["corrupt"] == 0
    final = subprocess.run(command, capture_output=True, text=True, timeout=120)
    FAULT_STATS["resumed"] += 1
    assert final.returncode == 0, final.stderr[-2000:]
    counts = counts_of(final.stdout)
    assert sum(counts.values()) == counts[Outcome.ALIGNED] + counts[Outcome.ALREADY_THERE] == 30
    assert pngs(out) == sorted(output_name(path) for path in relative_paths)
    assert not unreadable_images(out)
    assert all(Image.open(out / name).size == (32, 32) for name in pngs(out))
    assert not [name for name in os.listdir(out) if TEMP_NAME.match(name)]
    listed = [path for _, path, _ in report_lines(out / "align_faces_report.txt")]
    assert len(listed) == len(set(listed))
