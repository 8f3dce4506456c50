"""Part 4: the layer ops (real graphs in real sessions) and the dataset on real files."""
import os
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from conftest import write_images
from gantut_datafuncs import batch_norm, conv2d, conv2d_transpose, dataset_files, linear, lrelu
from extras.data.dataset import DatasetError, epoch_batches, feed_batches, load_dataset, prefetch


def variables():
    return {v.op.name: v.shape.as_list() for v in tf.global_variables()}


def test_conv2d_names_shapes_and_stride(sess):
    x = tf.placeholder(tf.float32, [None, 16, 16, 3])
    y = conv2d(x, 8, name="d_h0_conv")
    assert variables() == {"d_h0_conv/w": [5, 5, 3, 8], "d_h0_conv/biases": [8]}
    sess.run(tf.global_variables_initializer())
    out = sess.run(y, {x: np.ones((2, 16, 16, 3))})
    assert out.shape == (2, 8, 8, 8)
    w = sess.run(tf.global_variables()[0])
    assert np.abs(w).max() <= 2 * 0.02 + 1e-6  # truncated normal: within two stddevs


def test_conv2d_transpose_any_batch_and_with_w(sess):
    x = tf.placeholder(tf.float32, [None, 4, 4, 6])
    y, w, b = conv2d_transpose(x, [None, 8, 8, 2], name="g_h1", with_w=True)
    assert y.shape.as_list() == [None, 8, 8, 2]
    assert w.shape.as_list() == [5, 5, 2, 6] and b.shape.as_list() == [2]
    sess.run(tf.global_variables_initializer())
    for batch in (1, 5):
        assert sess.run(y, {x: np.ones((batch, 4, 4, 6))}).shape == (batch, 8, 8, 2)


def test_linear_names_and_bias_start(sess):
    x = tf.placeholder(tf.float32, [None, 7])
    y, matrix, bias = linear(x, 3, "g_h0_lin", bias_start=0.5, with_w=True)
    assert variables() == {"g_h0_lin/Matrix": [7, 3], "g_h0_lin/bias": [3]}
    sess.run(tf.global_variables_initializer())
    assert np.allclose(sess.run(y, {x: np.zeros((2, 7))}), 0.5)


def test_lrelu_leaks_negative_values(sess):
    out = sess.run(lrelu(tf.constant([-10.0, 0.0, 3.0])))
    assert np.allclose(out, [-2.0, 0.0, 3.0])


def test_batch_norm_training_uses_batch_statistics_and_inference_moving_averages(sess):
    x = tf.placeholder(tf.float32, [None, 4, 4, 2])
    train = tf.placeholder(tf.bool, [])
    bn = batch_norm(name="d_bn1")
    y = bn(x, train)
    updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    assert len(updates) == 2
    names = {v.op.name for v in tf.global_variables()}
    assert names == {"d_bn1/beta", "d_bn1/gamma", "d_bn1/moving_mean", "d_bn1/moving_variance"}
    assert {v.op.name for v in tf.trainable_variables()} == {"d_bn1/beta", "d_bn1/gamma"}
    sess.run(tf.global_variables_initializer())
    batch = np.random.default_rng(0).normal(5.0, 3.0, (8, 4, 4, 2)).astype(np.float32)

    trained = sess.run(y, {x: batch, train: True})
    assert np.allclose(trained.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    assert np.allclose(trained.std(axis=(0, 1, 2)), 1, atol=1e-2)
    # Fresh moving averages are mean 0, variance 1: inference leaves the input almost as is.
    assert np.allclose(sess.run(y, {x: batch, train: False}), batch, atol=1e-3)

    for _ in range(100):  # decay 0.9: after 100 updates the averages are the batch's own
        sess.run(updates, {x: batch, train: True})
    inferred = sess.run(y, {x: batch, train: False})
    assert np.allclose(inferred, trained, atol=1e-3)


def test_dataset_files_is_recursive_any_case_and_skips_hidden(tmp_path):
    root = tmp_path / "aligned"
    for name in ["a.png", "sub/b.JPG", "sub/deeper/c.jpeg", "d.txt", ".hidden.png",
                 ".cache/e.png", "sub/._f.jpg"]:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    found = [os.path.relpath(p, root) for p in dataset_files(str(root))]
    assert found == ["a.png", "sub/b.JPG", "sub/deeper/c.jpeg"]


def test_dataset_files_follows_symlinked_folders_each_once(tmp_path):
    root, elsewhere = tmp_path / "aligned", tmp_path / "elsewhere"
    for path in (root / "a.png", elsewhere / "b.png"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (root / "linked").symlink_to(elsewhere)
    (root / "loop").symlink_to(root)  # a link loop must not trap the walk
    found = [os.path.relpath(p, root) for p in dataset_files(str(root))]
    assert found == ["a.png", "linked/b.png"]


def test_dataset_files_is_reachable_from_gantut_gan():
    import gantut_gan
    assert gantut_gan.dataset_files is dataset_files


def test_load_dataset_skips_and_counts_bad_files_and_converts_modes(tmp_path, capsys):
    root = str(tmp_path / "data")
    write_images(root, 5, 16)
    write_images(os.path.join(root, "gray"), 2, 16, mode="L")
    write_images(os.path.join(root, "rgba"), 2, 16, mode="RGBA")
    open(os.path.join(root, "zero.png"), "wb").close()
    with open(os.path.join(root, "text.jpg"), "w") as f:
        f.write("not an image")
    good = open(os.path.join(root, "img_0000.png"), "rb").read()
    with open(os.path.join(root, "truncated.png"), "wb") as f:
        f.write(good[:len(good) // 2])
    images = load_dataset(root, 16, cache_dir=str(tmp_path / "ckpt"))
    assert images.shape == (9, 16, 16, 3) and images.dtype == np.uint8
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning: skipping")]
    assert len(warnings) == 3  # one line for each bad file
    for bad in ("zero.png", "text.jpg", "truncated.png"):
        assert sum(bad in line for line in warnings) == 1
    assert "3 unreadable image(s)" in err
    # A second run uses the cache: no new warnings, but the count is still reported.
    load_dataset(root, 16, cache_dir=str(tmp_path / "ckpt"))
    err = capsys.readouterr().err
    assert "zero.png" not in err and "3 unreadable image(s)" in err


def test_load_dataset_caches_and_rebuilds_when_files_change(tmp_path):
    root, cache = str(tmp_path / "data"), str(tmp_path / "ckpt")
    write_images(root, 4, 8)
    first = load_dataset(root, 8, cache_dir=cache)
    cached = [n for n in os.listdir(cache) if n.endswith(".npy")]
    stamp = os.path.getmtime(os.path.join(cache, cached[0]))
    time.sleep(0.01)
    again = load_dataset(root, 8, cache_dir=cache)
    assert np.array_equal(first, again)
    assert os.path.getmtime(os.path.join(cache, cached[0])) == stamp
    write_images(os.path.join(root, "more"), 3, 8, seed=1)
    assert len(load_dataset(root, 8, cache_dir=cache)) == 7
    assert len([n for n in os.listdir(cache) if n.endswith(".npy")]) == 1  # the stale one went


def test_load_dataset_wrong_size_is_refused_unless_cropping(tmp_path):
    root = str(tmp_path / "data")
    write_images(root, 3, (40, 30))
    with pytest.raises(DatasetError, match="--is_crop.*align_faces.py"):
        load_dataset(root, 16, cache_dir=str(tmp_path / "c1"))
    images = load_dataset(root, 16, is_crop=True, cache_dir=str(tmp_path / "c2"))
    assert images.shape == (3, 16, 16, 3)


def test_load_dataset_grayscale_model_and_train_size(tmp_path):
    root = str(tmp_path / "data")
    write_images(root, 6, 8)
    images = load_dataset(root, 8, c_dim=1, train_size=4, cache_dir=str(tmp_path / "c"))
    assert images.shape == (4, 8, 8, 1)


@pytest.mark.parametrize("make", ["missing", "empty", "no_images"])
def test_load_dataset_names_a_folder_it_cannot_use(tmp_path, make):
    root = tmp_path / "data"
    if make != "missing":
        root.mkdir()
    if make == "no_images":
        (root / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match=str(root)):
        load_dataset(str(root), 16, cache_dir=str(tmp_path / "c"))


def test_epoch_batches_cover_each_image_once_and_resume_exactly():
    batches = list(epoch_batches(50, 8, seed=1, epoch=0))
    assert len(batches) == 6  # the partial batch is dropped
    seen = np.concatenate([rows for _, rows in batches])
    assert len(set(seen.tolist())) == 48
    resumed = list(epoch_batches(50, 8, seed=1, epoch=0, start=4))
    assert [i for i, _ in resumed] == [4, 5]
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(batches[4:], resumed))
    other_epoch = np.concatenate([r for _, r in epoch_batches(50, 8, seed=1, epoch=1)])
    assert not np.array_equal(seen, other_epoch)


def test_feed_batches_yield_each_image_once_as_bytes():
    images = np.arange(4 * 2 * 2, dtype=np.uint8).reshape(4, 2, 2, 1)
    batches = list(feed_batches(images, 2, seed=0, epoch=0))
    assert [index for index, _ in batches] == [0, 1]
    fed = np.concatenate([batch for _, batch in batches])
    assert fed.dtype == np.uint8
    assert sorted(fed[:, 0, 0, 0].tolist()) == images[:, 0, 0, 0].tolist()


def test_prefetch_passes_items_and_errors_through():
    assert list(prefetch(iter(range(5)))) == [0, 1, 2, 3, 4]

    def broken():
        yield 1
        raise RuntimeError("disk gone")
    with pytest.raises(RuntimeError, match="disk gone"):
        list(prefetch(broken()))


def test_fused_batch_norm_computes_what_the_posts_batch_norm_computes(sess):
    """Both choices of --fused_bn: the same outputs, moving averages and gradients."""
    x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, (8, 4, 4, 5)), tf.float32)
    train = tf.placeholder(tf.bool, [])
    outputs = {}
    for fused in (False, True):
        y = batch_norm(name="bn_%s" % fused, fused=fused)(x * 1.0, train)
        outputs[fused] = (y, tf.gradients(tf.reduce_sum(y * y * x), x)[0])
    updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
    moving = {fused: [v for v in tf.global_variables() if v.op.name.startswith("bn_%s/moving"
                                                                               % fused)]
              for fused in (False, True)}
    sess.run(tf.global_variables_initializer())
    sess.run(updates, {train: True})
    for mode in (True, False):  # batch statistics, then the updated moving averages
        plain, fused = sess.run([outputs[False], outputs[True]], {train: mode})
        np.testing.assert_allclose(fused[0], plain[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(fused[1], plain[1], rtol=1e-3, atol=1e-4)
    plain_moving, fused_moving = sess.run([moving[False], moving[True]])
    for ours, posts in zip(fused_moving, plain_moving):
        np.testing.assert_allclose(ours, posts, rtol=1e-5)
    assert not np.allclose(plain_moving[0], 0)  # the update moved them


def test_fused_batch_norm_gives_gradients_after_a_session_has_run_it(sess):
    """As image completion does: gradients of a restored model, built after its first run."""
    x = tf.placeholder(tf.float32, [2, 4, 4, 3])
    train = tf.placeholder(tf.bool, [])
    y = batch_norm(name="bn", fused=True)(x, train)
    sess.run(tf.global_variables_initializer())
    value = np.random.default_rng(0).normal(size=(2, 4, 4, 3))
    sess.run(y, {x: value, train: False})
    grad = tf.gradients(tf.reduce_sum(tf.square(y)), x)[0]
    assert np.all(np.isfinite(sess.run(grad, {x: value, train: False})))
