"""The decoded-image cache loses nothing: a run that fails on another folder leaves every cache
it did not build, and a folder whose files change gets a new cache before the old one goes."""
import glob
import os

import numpy as np

from conftest import TINY, run_trainer, write_images
from extras.data.dataset import load_dataset


def caches(folder, pattern="images_*"):
    """{file name: (inode, mtime)} of the cache files in `folder`."""
    return {os.path.basename(path): (os.stat(path).st_ino, os.stat(path).st_mtime_ns)
            for path in glob.glob(os.path.join(folder, pattern))}


def write_broken_files(folder, count=3):
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        with open(os.path.join(folder, "broken_%d.png" % i), "wb") as out:
            out.write(b"\x89PNG not really" * (i + 1))


def test_a_failed_run_on_broken_files_keeps_the_demo_cache(tmp_path):
    demo = ["--dataset", "demo", "--demo_images", "40", "--epoch", "1", "--noeval_every_epoch",
            "--noprogress_gif"] + TINY
    first = run_trainer(str(tmp_path), *demo)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "decoding images" in first.stderr
    before = caches(tmp_path / "checkpoint")
    assert any(name.endswith(".npy") for name in before)

    write_broken_files(str(tmp_path / "broken"))
    failed = run_trainer(str(tmp_path), "--dataset", "broken", "--epoch", "1", *TINY)
    assert failed.returncode == 1
    assert "no usable image" in failed.stderr and "--batch_size" not in failed.stderr
    after = caches(tmp_path / "checkpoint")
    # Untouched, so the next run reads it as it is (the next test checks a cache is reused).
    assert {name: after[name] for name in before} == before


def test_a_changed_folder_retires_only_its_own_old_cache_once_the_new_one_is_whole(tmp_path):
    write_images(str(tmp_path / "a"), 6, 16)
    write_images(str(tmp_path / "b"), 6, 16, seed=1)
    cache = str(tmp_path / "cache")
    load_dataset(str(tmp_path / "a"), 16, cache_dir=cache)
    a_old = set(caches(cache))
    load_dataset(str(tmp_path / "b"), 16, cache_dir=cache)
    b_cache = set(caches(cache)) - a_old
    assert len(a_old) == len(b_cache) == 2  # each an .npy and its .json

    write_images(str(tmp_path / "a" / "more"), 2, 16, seed=2)
    images = load_dataset(str(tmp_path / "a"), 16, cache_dir=cache)
    assert len(images) == 8
    a_new = set(caches(cache)) - b_cache
    assert len(a_new) == 2 and not a_new & a_old  # a's old cache retired, b's kept
    assert len(load_dataset(str(tmp_path / "b"), 16, cache_dir=cache)) == 6
    assert set(caches(cache)) == a_new | b_cache  # reading b again built nothing
    np.testing.assert_array_equal(load_dataset(str(tmp_path / "a"), 16, cache_dir=cache), images)


def test_a_failed_pix2pix_run_keeps_the_demo_pair_cache(tmp_path):
    args = ["--dataset", "demo", "--demo_pairs", "6", "--epoch", "1", "--checkpoint_dir", "ck"]
    first = run_trainer(str(tmp_path), *args, *TINY_PIX2PIX, script="pix2pix_trainer.py")
    assert first.returncode == 0, first.stderr[-2000:]
    before = caches(tmp_path / "ck")
    assert any(name.endswith(".npy") for name in before)

    write_broken_files(str(tmp_path / "broken"))
    failed = run_trainer(str(tmp_path), "--dataset", "broken", "--checkpoint_dir", "ck",
                         *TINY_PIX2PIX, script="pix2pix_trainer.py")
    assert failed.returncode == 1
    after = caches(tmp_path / "ck")
    # Untouched, so the next run reads it as it is (test_pix2pix checks a pair cache is reused).
    assert {name: after[name] for name in before} == before


TINY_PIX2PIX = ["--image_size", "16", "--gf_dim", "4", "--df_dim", "4", "--threads", "2",
                "--seed", "3"]
