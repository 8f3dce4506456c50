"""The demo model shipped in models/demo: the posts' shape, weights only, used in place (it
writes nothing into its folder) and drawing faces dlib finds."""
import json
import os
import shutil

import numpy as np
import tensorflow.compat.v1 as tf
from PIL import Image

from conftest import REPO, checkpoint_steps, newest_position, run_trainer
from extras.run.config import TrainingConfig
from extras.run.metrics import face_rate
from extras.run.checkpoints import Position
from gantut_gan import DCGAN

DEMO = os.path.join(REPO, "models", "demo")


def folder_state(folder):
    """{file name: (size, mtime)} of `folder`'s files."""
    return {entry.name: (entry.stat().st_size, entry.stat().st_mtime_ns)
            for entry in os.scandir(folder)}


def test_the_demo_model_is_the_posts_dcgan_saved_weights_only():
    with open(os.path.join(DEMO, "model.json")) as settings:
        assert json.load(settings) == dict(image_size=64, c_dim=3, z_dim=100, gf_dim=64,
                                           df_dim=64, loss="gan")
    variables = tf.train.list_variables(tf.train.latest_checkpoint(DEMO))
    # G, D and the fixed sample noise; no Adam state, no averages, no training position.
    assert sum(int(np.prod(shape)) for _, shape in variables) == 9462020
    assert {name.split("/")[0] for name, _ in variables} == {"generator", "discriminator",
                                                             "state"}
    assert not [name for name, _ in variables if "adam" in name or name == "state/counters"]


def test_the_demo_models_samples_are_faces_and_using_it_writes_nothing_beside_it(tmp_path):
    before = folder_state(DEMO)
    result = run_trainer(str(tmp_path), "--train=False", "--checkpoint_dir", DEMO,
                         "--seed", "1", "--n_samples", "32", "--save_single")
    assert result.returncode == 0, result.stderr[-2000:]
    assert folder_state(DEMO) == before
    singles = sorted((tmp_path / "generated").glob("*.png"))
    samples = np.stack([np.asarray(Image.open(path)) for path in singles
                        if path.name != "samples.png"])
    assert samples.shape == (32, 64, 64, 3)
    # 0.55 on 1,000 samples (docs/results.md), 0.70 for the real faces; random weights score 0.
    assert face_rate(samples) >= 0.25


def test_training_goes_on_from_the_demo_model(tmp_path):
    """Its weights alone: training starts anew from them, at its step, Adam's state fresh."""
    shutil.copytree(DEMO, tmp_path / "checkpoint")
    step = checkpoint_steps(str(tmp_path / "checkpoint"))[-1]
    images = np.random.default_rng(0).integers(0, 256, (64, 64, 64, 3), dtype=np.uint8)
    for name in ("s", "logs"):
        os.makedirs(tmp_path / name)
    config = TrainingConfig(
        epoch=1, checkpoint_dir=str(tmp_path / "checkpoint"), sample_dir=str(tmp_path / "s"),
        logs_dir=str(tmp_path / "logs"), holdout=0.0, eval_every_epoch=False,
        progress_gif=False, seed=1)
    with tf.Graph().as_default(), tf.Session() as sess:
        DCGAN(sess).train(config, images)
    assert checkpoint_steps(str(tmp_path / "checkpoint"))[-1] == step + 1
    assert newest_position(config.checkpoint_dir, DCGAN.model_name) == Position(step + 1, 1, 0, 1)
