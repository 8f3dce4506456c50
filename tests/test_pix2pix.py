"""The pix2pix stage: extras/model/pix2pix.py in real sessions on real files, and pix2pix_trainer.py
run as a real subprocess on tiny paired sets."""
import glob
import json
import os
import re
import shutil
import signal
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import conftest
from conftest import REPO, assert_refused, flag_errors, interrupt_when, run_trainer, write_images
from extras.data.dataset import split_holdout
from gantut_imgfuncs import to_uint8
from extras.model.pix2pix import (Pix2Pix, feed_pairs, jitter_pairs, load_pairs, orient,
                                  receptive_field)
from extras.run.checkpoints import WeightSnapshot
from extras.utils import BackgroundWrites

PROGRESS = re.compile(r"^Epoch \[ *(\d+)\] \[ *(\d+)/ *(\d+)\] time: [\d.]+, disc_loss: [\d.]+, "
                      r"gen_gan_loss: [\d.]+, gen_l1_loss: [\d.]+", re.M)
# The smallest model the trainer builds: 16x16 images, thin layers.
TINY = ["--image_size", "16", "--gf_dim", "4", "--df_dim", "4", "--threads", "2", "--seed", "3"]


def progress(output):
    """(epoch, batch) of every progress line."""
    return [(int(e), int(i)) for e, i, _ in PROGRESS.findall(output)]


def checkpoint_steps(folder):
    return conftest.checkpoint_steps(folder, "pix2pix.model")


def run_pix2pix(cwd, *args, timeout=300):
    return run_trainer(cwd, *args, timeout=timeout, script="pix2pix_trainer.py")


def side_of(front):
    """The side image of a front image in the test sets: a fixed function, mirrored negative."""
    return 255 - front[:, ::-1]


def write_pairs(root, count, size=16, seed=0):
    """`count` pairs as root/front/img_i.png and root/side/img_i.png; return the front arrays."""
    fronts = []
    for path in write_images(os.path.join(root, "front"), count, size, seed=seed):
        with Image.open(path) as img:
            front = np.asarray(img)
        os.makedirs(os.path.join(root, "side"), exist_ok=True)
        Image.fromarray(side_of(front)).save(path.replace("front", "side"))
        fronts.append(front)
    return np.array(fronts)


def tiny_model(sess, image_size=16, **kwargs):
    model = Pix2Pix(sess, image_size=image_size, gf_dim=4, df_dim=4, **kwargs)
    sess.run(tf.global_variables_initializer())
    return model


# ----------------------------------------------------------------------------------------------
# The graph
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("image_size,dense_layers", [(64, 0), (128, 0), (256, 0), (64, 5)])
def test_unet_and_patchgan_shapes_follow_the_size(sess, image_size, dense_layers):
    model = tiny_model(sess, image_size, dense_layers=dense_layers)
    images = np.zeros((2, image_size, image_size, 3))
    G, logits = sess.run([model.G, model.real_logits],
                         {model.inputs: images, model.targets: images, model.is_training: False})
    assert G.shape == images.shape
    assert G.min() >= -1 and G.max() <= 1  # tanh output
    levels = int(np.log2(image_size))  # 4x4 stride-2 convolutions down to 1x1
    names = [v.op.name for v in tf.trainable_variables()]
    assert sum(re.match(r"generator/g_e\d+_conv/w$", n) is not None for n in names) == levels
    assert sum(re.match(r"generator/g_d\d+_deconv/w$", n) is not None for n in names) == levels
    assert model.bottleneck.shape.as_list()[1:3] == [1, 1]
    assert sum(n.endswith("/Matrix") for n in names) == dense_layers
    patch = image_size // 2 ** model.patch_layers
    assert logits.shape == (2, patch, patch, 1)


@pytest.mark.parametrize("image_size,field", [(256, 70), (64, 16)])
def test_each_patchgan_output_sees_a_patch_of_the_pair(sess, image_size, field):
    model = tiny_model(sess, image_size)
    centre = model.real_logits.shape[1] // 2
    grad = tf.gradients(model.real_logits[0, centre, centre, 0], [model.inputs, model.targets])
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (1, image_size, image_size, 3))
    to_input, to_target = sess.run(grad, {model.inputs: images, model.targets: images,
                                          model.is_training: False})
    for seen in (to_input, to_target):  # D sees both images of the pair
        rows, cols = np.nonzero(np.abs(seen[0]).sum(axis=-1))
        assert rows.max() - rows.min() + 1 == cols.max() - cols.min() + 1 == field
    assert receptive_field(model.patch_layers) == field


def test_every_encoder_level_feeds_its_decoder_level(sess):
    tf.set_random_seed(0)
    model = tiny_model(sess, 32)
    rng = np.random.default_rng(1)
    feed = {model.inputs: rng.uniform(-1, 1, (1, 32, 32, 3)), model.is_training: False}
    before = sess.run(model.G, feed)
    carried = model.skips + [model.bottleneck]
    assert len(carried) == int(np.log2(32))  # one per encoder level
    for tensor in carried:
        value = sess.run(tensor, feed)
        assert np.array_equal(sess.run(model.G, {**feed, tensor: value}), before)
        changed = value + rng.normal(0, 1, value.shape)
        # Freshly initialised weights are small, and so is the output and what reaches it from
        # the deep levels (about 1e-3 of it from the bottleneck); a level cut off gives 0.
        difference = np.abs(sess.run(model.G, {**feed, tensor: changed}) - before).max()
        assert difference > 1e-4 * np.abs(before).max(), tensor.name


def test_dropout_only_while_training(sess):
    model = tiny_model(sess, 16)
    images = np.random.default_rng(2).uniform(-1, 1, (1, 16, 16, 3))
    runs = {mode: [sess.run(model.G, {model.inputs: images, model.is_training: mode})
                   for _ in range(2)] for mode in (True, False)}
    assert not np.array_equal(*runs[True])
    assert np.array_equal(*runs[False])
    assert len(re.findall(r"dropout", " ".join(
        op.name for op in sess.graph.get_operations() if op.type == "RandomUniform"))) == 3


def test_a_grid_tower_on_a_snapshot_draws_the_weights_of_its_step_and_leaves_g_as_it_was(sess):
    model = tiny_model(sess, 16)
    carried = model.skips + [model.bottleneck]
    updates = len(tf.get_collection(tf.GraphKeys.UPDATE_OPS))
    snapshot = WeightSnapshot("sample_snapshot")
    snapshot_g = model.inference_generator(snapshot.getter())
    assert model.skips + [model.bottleneck] == carried
    assert len(tf.get_collection(tf.GraphKeys.UPDATE_OPS)) == updates  # no step runs its own
    rng = np.random.default_rng(4)
    fronts, sides = rng.uniform(-1, 1, (2, 2, 16, 16, 3))
    now = model.translate(fronts)
    writes, steps_done = BackgroundWrites(), threading.Event()
    writes.submit(steps_done.wait)  # the thread held until the steps below have run
    drawn = snapshot.take(sess, writes, model.translate, fronts, 16, snapshot_g)
    for _ in range(3):
        model.train_step(fronts, sides)
    steps_done.set()
    np.testing.assert_array_equal(drawn.result(), now)
    writes.close()
    assert np.abs(model.translate(fronts) - now).max() > 0  # the steps changed G


def test_a_few_dozen_steps_lower_the_l1_loss(sess):
    rng = np.random.default_rng(3)
    fronts = rng.uniform(-1, 1, (8, 4, 4, 3)).repeat(4, axis=1).repeat(4, axis=2)
    sides = -fronts  # the negative: a fixed function of the input
    tf.set_random_seed(0)
    # Ten times pix2pix's learning rate, so that a few dozen steps show the trend.
    model = Pix2Pix(sess, image_size=16, gf_dim=8, df_dim=8, learning_rate=0.002)
    sess.run(tf.global_variables_initializer())
    start = model.mean_l1(fronts, sides)
    losses = [model.train_step(fronts[i % 8:i % 8 + 1], sides[i % 8:i % 8 + 1])["gen_l1_loss"]
              for i in range(48)]
    assert np.mean(losses[-8:]) < 0.75 * np.mean(losses[:8])
    assert model.mean_l1(fronts, sides) < 0.75 * start  # also in inference mode


# ----------------------------------------------------------------------------------------------
# Paired data
# ----------------------------------------------------------------------------------------------

def test_side_by_side_and_two_folder_layouts_load_the_same_pairs(tmp_path):
    fronts = write_pairs(str(tmp_path / "folders"), 5)
    os.makedirs(tmp_path / "joined")
    for i, front in enumerate(fronts):
        Image.fromarray(np.concatenate([front, side_of(front)], axis=1)).save(
            tmp_path / "joined" / ("img_%04d.png" % i))
    from_folders = load_pairs(str(tmp_path / "folders"), 16, cache_dir=str(tmp_path / "c1"))
    side_by_side = load_pairs(str(tmp_path / "joined"), 16, cache_dir=str(tmp_path / "c2"))
    assert from_folders.shape == (5, 16, 16, 6) and from_folders.dtype == np.uint8
    assert np.array_equal(from_folders, side_by_side)
    assert np.array_equal(from_folders[..., :3], fronts)
    assert np.array_equal(from_folders[..., 3:], [side_of(front) for front in fronts])


def test_bad_pairs_are_skipped_counted_and_named(tmp_path, capsys):
    root = tmp_path / "pairs"
    write_pairs(str(root), 4)
    Image.new("RGB", (16, 16)).save(root / "front" / "extra.png")
    Image.new("RGB", (16, 16)).save(root / "side" / "lonely.jpg")
    Image.new("RGB", (16, 16)).save(root / "front" / "mismatch.png")
    Image.new("RGB", (20, 20)).save(root / "side" / "mismatch.png")
    Image.new("RGB", (16, 16)).save(root / "front" / "broken.png")
    (root / "side" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    pairs = load_pairs(str(root), 16, cache_dir=str(tmp_path / "cache"))
    assert len(pairs) == 4
    err = capsys.readouterr().err
    assert "4 file(s) in %s skipped" % root in err
    for name in ("front/extra.png", "side/lonely.jpg", "mismatch", "broken"):
        assert name in err, name

    # The cache is reused, and its skip list reported again.
    assert np.array_equal(load_pairs(str(root), 16, cache_dir=str(tmp_path / "cache")), pairs)
    err = capsys.readouterr().err
    assert "decoding" not in err and "4 file(s)" in err


def test_a_side_by_side_file_of_the_wrong_shape_is_skipped(tmp_path, capsys):
    write_images(str(tmp_path / "joined"), 3, (32, 16))
    write_images(str(tmp_path / "joined" / "odd"), 1, (20, 16))
    assert len(load_pairs(str(tmp_path / "joined"), 16, cache_dir=str(tmp_path / "c"))) == 3
    assert "odd/img_0000.png" in capsys.readouterr().err


def test_jitter_is_the_same_for_both_images_of_a_pair():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    jittered = jitter_pairs(np.concatenate([image, image], axis=-1), 3, rng)
    assert np.array_equal(jittered[..., :3], jittered[..., 3:])
    assert all(not np.array_equal(a, b) for a, b in zip(jittered[..., :3], image))


def test_direction_and_flip_side_orient_the_pair():
    pair = np.arange(2 * 4 * 4 * 2, dtype=np.uint8).reshape(2, 4, 4, 2)
    front, side = pair[..., :1], pair[..., 1:]
    assert np.array_equal(orient(pair, 1, "AtoB", False), pair)
    assert np.array_equal(orient(pair, 1, "BtoA", False), np.concatenate([side, front], -1))
    assert np.array_equal(orient(pair, 1, "AtoB", True),
                          np.concatenate([front, side[:, :, ::-1]], -1))


def test_batches_follow_the_flags_and_repeat_exactly_from_a_resume_point():
    pairs = np.random.default_rng(5).integers(0, 256, (10, 16, 16, 6), dtype=np.uint8)
    config = SimpleNamespace(c_dim=3, direction="BtoA", flip_side=False, jitter=False,
                             batch_size=2)
    for index, (inputs, targets) in feed_pairs(pairs, np.arange(10), config, seed=5, epoch=1):
        assert inputs.shape == targets.shape == (2, 16, 16, 3)
        assert inputs.min() >= -1 and inputs.max() <= 1
        # BtoA: the side half is the input; the batch's rows are in the front half.
        rows = [np.flatnonzero((pairs[..., :3] == to_uint8((target + 1) / 2)).all(axis=(1, 2, 3)))
                for target in targets]
        assert np.array_equal(to_uint8((inputs + 1) / 2), pairs[np.ravel(rows)][..., 3:])
    config.jitter = True
    full = list(feed_pairs(pairs, np.arange(10), config, seed=5, epoch=1))
    resumed = list(feed_pairs(pairs, np.arange(10), config, seed=5, epoch=1, start=2))
    assert [index for index, _ in full] == list(range(5))
    for (i, one), (j, other) in zip(full[2:], resumed):
        assert i == j and all(np.array_equal(a, b) for a, b in zip(one, other))


# ----------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run: 10 pairs of 16x16 (8 to train, 2 to test), batch 1, 2 epochs: 16 steps."""
    work = tmp_path_factory.mktemp("pix2pix")
    fronts = write_pairs(str(work / "pairs"), 10)
    result = run_pix2pix(str(work), "--dataset", "pairs", "--epoch", "2", "--sample_freq", "6",
                         "--ckpt_freq", "5", "--summary_freq", "1", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return work, fronts, result


def test_progress_checkpoints_and_settings(trained):
    work, _, result = trained
    assert progress(result.stdout) == [(e, i) for e in range(2) for i in range(8)]
    assert checkpoint_steps(str(work / "checkpoint_pix2pix")) == [5, 8, 10, 15, 16]
    assert "10 pairs from pairs: 8 to train on, 2 for testing" in result.stdout
    assert "epoch 1: L1 on 2 test pairs" in result.stdout
    assert "a U-Net of 4 levels, 0 dense layer(s) at its bottleneck; D judges 16x16" \
        in result.stdout


def test_tensorboard_gets_the_four_losses_every_summary_step(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    work, _, _ = trained
    events = EventAccumulator(str(work / "logs_pix2pix"))
    events.Reload()
    for name in ("gen_total_loss", "gen_gan_loss", "gen_l1_loss", "disc_loss"):
        assert [e.step for e in events.Scalars(name)] == list(range(1, 17)), name
    assert [e.step for e in events.Scalars("test_l1")] == [8, 16]
    assert events.Tags()["graph"]


def test_sample_rows_show_input_generated_and_target_of_test_pairs(trained):
    work, fronts, _ = trained
    names = sorted(os.listdir(work / "samples_pix2pix"))
    assert names == ["epoch_00.png", "epoch_01.png", "train_00-0005.png", "train_01-0003.png"]
    _, test_rows = split_holdout(10, 0.2)
    with Image.open(work / "samples_pix2pix" / "epoch_01.png") as grid:
        grid = np.asarray(grid)
    assert grid.shape == (2 * 16, 3 * 16, 3)  # a row per test pair: input | generated | target
    for row, index in enumerate(test_rows):
        cells = grid[row * 16:(row + 1) * 16]
        assert np.abs(cells[:, :16].astype(int) - fronts[index]).max() <= 1
        assert np.abs(cells[:, 32:].astype(int) - side_of(fronts[index])).max() <= 1


def test_translation_from_a_checkpoint_gives_the_same_output_twice(trained, tmp_path):
    work, _, _ = trained
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ("img_0001.png", "img_0002.png", "img_0003.png"):
        (inputs / name).write_bytes((work / "pairs" / "front" / name).read_bytes())
    (inputs / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    outputs = []
    for out in ("out1", "out2"):
        result = run_pix2pix(str(work), "--train=False", "--input", str(inputs),
                             "--out_dir", str(tmp_path / out), "--threads", "2")
        assert result.returncode == 0, result.stderr[-3000:]
        assert "translated 3 image(s)" in result.stdout
        assert "1 unreadable file(s) skipped" in result.stdout and "corrupt.png" in result.stderr
        outputs.append({p.name: p.read_bytes() for p in (tmp_path / out).iterdir()})
    assert sorted(outputs[0]) == ["img_0001.png", "img_0002.png", "img_0003.png"]
    assert outputs[0] == outputs[1]
    with Image.open(tmp_path / "out1" / "img_0001.png") as image:
        assert image.size == (16, 16)  # the size recorded in model.json, with no flag given


def test_a_second_run_resumes_at_the_saved_step(trained, tmp_path):
    # On a copy: the other tests read the trained run as it was left.
    work = tmp_path / "run"
    shutil.copytree(trained[0], work)
    result = run_pix2pix(str(work), "--dataset", "pairs", "--epoch", "3", "--sample_freq", "100",
                         "--ckpt_freq", "100", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "An existing model was found" in result.stdout
    assert progress(result.stdout) == [(2, i) for i in range(8)]
    assert checkpoint_steps(str(work / "checkpoint_pix2pix"))[-1] == 24
    assert "decoding" not in result.stderr  # the pair cache of the first run is used


def test_sigterm_saves_a_checkpoint_and_the_next_run_resumes_there(tmp_path):
    write_pairs(str(tmp_path / "pairs"), 20)
    args = ["--dataset", "pairs", "--epoch", "1000", "--ckpt_freq", "100000",
            "--sample_freq", "100000", *TINY]
    # SIGTERM once training is well under way.
    returncode, output = interrupt_when("pix2pix_trainer.py", str(tmp_path), args,
                                        lambda out: len(progress(out)) >= 20, signal.SIGTERM)
    assert returncode == 0, output[-2000:]
    done = progress(output)
    assert checkpoint_steps(str(tmp_path / "checkpoint_pix2pix"))[-1] == len(done) >= 20
    last_epoch, last_batch = done[-1]

    args[3] = str(last_epoch + 2)
    first = progress(run_pix2pix(str(tmp_path), *args).stdout)[0]
    assert first == ((last_epoch, last_batch + 1) if last_batch + 1 < 16 else (last_epoch + 1, 0))


@pytest.mark.parametrize("case", ["empty", "unpaired_only"])
def test_a_folder_without_pairs_stops_before_any_graph_saying_what_is_expected(tmp_path, case):
    (tmp_path / "pairs").mkdir()
    if case == "unpaired_only":
        write_images(str(tmp_path / "pairs" / "front"), 2, 16)
        write_images(str(tmp_path / "pairs" / "side"), 2, 16, ext=".jpg")
        os.rename(tmp_path / "pairs" / "side" / "img_0000.jpg",
                  tmp_path / "pairs" / "side" / "other.jpg")
        os.remove(tmp_path / "pairs" / "side" / "img_0001.jpg")
    result = run_pix2pix(str(tmp_path), "--dataset", "pairs", *TINY)
    assert result.returncode != 0
    assert "holds no image pairs" in result.stderr
    assert "side-by-side" in result.stderr and "front/ and side/" in result.stderr
    if case == "unpaired_only":
        assert "(3 unpaired image(s))" in result.stderr
    assert not glob.glob(str(tmp_path / "logs_pix2pix" / "*"))


def test_flags_that_make_no_sense_are_refused_by_name(tmp_path):
    bad = [("image_size", "48"), ("direction", "sideways"), ("test_split", "1.0")]
    errors = flag_errors("pix2pix_trainer", *[["--%s=%s" % case] for case in bad])
    for (flag, value), error in zip(bad, errors):
        assert error.startswith("error: flag --%s=%s: " % (flag, value)), error
    result = run_pix2pix(str(tmp_path), "--dataset", "x", "--direction=sideways")
    assert_refused(result, "error: flag --direction=sideways: ")
    assert not os.listdir(tmp_path)  # refused before anything was made


def test_help_lists_every_flag():
    result = run_pix2pix(REPO, "--help")
    for flag in ("dataset", "direction", "image_size", "dense_layers", "l1_lambda", "flip_side",
                 "jitter", "test_split", "epoch", "batch_size", "checkpoint_dir", "sample_dir",
                 "logs_dir", "sample_freq", "ckpt_freq", "summary_freq", "seed", "bf16",
                 "train", "input", "out_dir"):
        assert re.search(r"--(\[no\])?%s:" % flag, result.stdout), flag


def test_the_demo_trains_on_paired_faces(tmp_path):
    result = run_pix2pix(str(tmp_path), "--dataset", "demo", "--demo_pairs", "5", "--epoch", "1",
                         *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "5 pairs from data/demo_pairs_16px: 4 to train on, 1 for testing" in result.stdout
    names = [sorted(glob.glob("face_*.png", root_dir=tmp_path / "data" / "demo_pairs_16px" / view))
             for view in ("front", "side")]
    assert names[0] == names[1] and len(names[0]) == 5


def test_jitter_flip_side_dense_layers_and_direction_train_and_are_recorded(tmp_path):
    write_pairs(str(tmp_path / "pairs"), 6)
    result = run_pix2pix(str(tmp_path), "--dataset", "pairs", "--epoch", "1", "--jitter",
                         "--flip_side", "--dense_layers", "2", "--direction", "BtoA", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 dense layer(s) at its bottleneck" in result.stdout
    with open(tmp_path / "checkpoint_pix2pix" / "model.json") as saved:
        settings = json.load(saved)
    assert settings["dense_layers"] == 2 and settings["flip_side"] is True
    assert settings["direction"] == "BtoA"
    # A translation takes the model's settings from model.json, with no flag repeated.
    translated = run_pix2pix(str(tmp_path), "--train=False", "--input",
                             str(tmp_path / "pairs" / "side"), "--out_dir", "out")
    assert translated.returncode == 0, translated.stderr[-3000:]
    assert "2 dense layer(s)" in translated.stdout and "translated 6 image(s)" in translated.stdout
