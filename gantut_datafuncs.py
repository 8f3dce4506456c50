"""Data-related functions: the layer ops and the dataset (Part 4 of "Generative Adversarial Network
(GAN) in TensorFlow").

The layer ops (`batch_norm`, `conv2d`, `conv2d_transpose`, `lrelu`, `linear`) are small functions
built from `get_variable`, so every weight has a readable name under its layer's variable scope
(`discriminator/d_h0_conv/w`, `generator/g_h0_lin/Matrix`, ...). The post took batch norm from
`tf.contrib`, which is gone; it is written out here.

The dataset side fixes the post's slowest part: it read every image from disk on every step.
Here each image is decoded once into a compact uint8 array (cached on disk beside the run, so a
restart does not decode again), and batches are cut from it in a background thread.
"""
import concurrent.futures
import functools
import hashlib
import json
import os
import queue
import sys
import threading

import numpy as np
import tensorflow.compat.v1 as tf
from PIL import Image

from gantut_imgfuncs import center_crop, open_image, transform
from gantut_utils import Progress, atomic_path, image_files, read_json

# Bump when the decoding changes, so old caches are rebuilt rather than trusted.
CACHE_VERSION = 2  # 2: 16-bit levels scaled by 1/257, tRNS transparency on white


# ----------------------------------------------------------------------------------------------
# Layer ops
# ----------------------------------------------------------------------------------------------

class batch_norm(object):
    """Batch normalisation, called as `bn(x, train)` (Part 4; the post wrapped
    `tf.contrib.layers.batch_norm`).

    In training (`train` true, a Python bool or a bool tensor such as the `is_training`
    placeholder) it normalises with the batch's own mean and variance; otherwise with moving
    averages. The ops that update the moving averages (decay = `momentum`) go into the
    UPDATE_OPS collection, so the training step of the network that owns them runs them with
    no extra forward pass. `beta` (offset) and `gamma` (scale) are learned.
    """

    def __init__(self, epsilon=1e-5, momentum=0.9, name="batch_norm"):
        self.epsilon = epsilon
        self.momentum = momentum
        self.name = name

    def __call__(self, x, train=True):
        with tf.variable_scope(self.name):
            channels = x.shape[-1:]
            beta, gamma = offset_and_scale(channels)
            moving_mean = tf.get_variable("moving_mean", channels, trainable=False,
                                          initializer=tf.zeros_initializer())
            moving_variance = tf.get_variable("moving_variance", channels, trainable=False,
                                              initializer=tf.ones_initializer())
            batch_mean, batch_variance = tf.nn.moments(x, list(range(x.shape.ndims - 1)))
            for moving, batch in ((moving_mean, batch_mean), (moving_variance, batch_variance)):
                update = tf.assign_sub(moving, (moving - batch) * (1.0 - self.momentum))
                tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, update)
            # tf.where rather than tf.cond: both statistics are cheap, and no control flow keeps
            # the graph easy for grappler and oneDNN to fuse.
            train = tf.convert_to_tensor(train, dtype=tf.bool)
            mean = tf.where_v2(train, batch_mean, moving_mean)
            variance = tf.where_v2(train, batch_variance, moving_variance)
            return tf.nn.batch_normalization(x, mean, variance, beta, gamma, self.epsilon)


def offset_and_scale(channels):
    """The learned `beta` (offset, from 0) and `gamma` (scale, from 1) of a normalisation, one
    per channel (Part 4)."""
    beta = tf.get_variable("beta", channels, initializer=tf.zeros_initializer())
    gamma = tf.get_variable("gamma", channels, initializer=tf.ones_initializer())
    return beta, gamma


class layer_norm(object):
    """Layer normalisation, called as `ln(x, train)` like batch_norm (WGAN-GP addition).

    Each image is normalised over its own height, width and channels, then scaled by `gamma`
    and shifted by `beta` per channel. No image affects another, which the gradient penalty
    needs: it takes the critic's gradient per input image (Gulrajani et al. 2017, section 4).
    `train` is accepted for the same call as batch_norm and changes nothing.
    """

    def __init__(self, epsilon=1e-5, name="layer_norm"):
        self.epsilon = epsilon
        self.name = name

    def __call__(self, x, train=True):
        with tf.variable_scope(self.name):
            beta, gamma = offset_and_scale(x.shape[-1:])
            mean, variance = tf.nn.moments(x, list(range(1, x.shape.ndims)), keepdims=True)
            return tf.nn.batch_normalization(x, mean, variance, beta, gamma, self.epsilon)


def conv2d(input_, output_dim, k_h=5, k_w=5, d_h=2, d_w=2, stddev=0.02, name="conv2d"):
    """A strided convolution with SAME padding: weights `w`, then `biases` (Part 4)."""
    with tf.variable_scope(name):
        w = tf.get_variable("w", [k_h, k_w, input_.shape[-1], output_dim],
                            initializer=tf.truncated_normal_initializer(stddev=stddev))
        conv = tf.nn.conv2d(input_, w, strides=[1, d_h, d_w, 1], padding="SAME")
        biases = tf.get_variable("biases", [output_dim], initializer=tf.zeros_initializer())
        return tf.nn.bias_add(conv, biases)


def conv2d_transpose(input_, output_shape, k_h=5, k_w=5, d_h=2, d_w=2, stddev=0.02,
                     name="conv2d_transpose", with_w=False):
    """A transposed ("de-") convolution to `output_shape` [batch, h, w, channels] (Part 4).

    The batch entry may be None: the real batch size is read from `input_` at run time, so the
    same generator serves training batches and any number of samples.
    """
    with tf.variable_scope(name):
        w = tf.get_variable("w", [k_h, k_w, output_shape[-1], input_.shape[-1]],
                            initializer=tf.random_normal_initializer(stddev=stddev))
        dynamic_shape = tf.stack([tf.shape(input_)[0]] + list(output_shape[1:]))
        deconv = tf.nn.conv2d_transpose(input_, w, output_shape=dynamic_shape,
                                        strides=[1, d_h, d_w, 1])
        deconv.set_shape([input_.shape[0]] + list(output_shape[1:]))
        biases = tf.get_variable("biases", [output_shape[-1]], initializer=tf.zeros_initializer())
        deconv = tf.nn.bias_add(deconv, biases)
        return (deconv, w, biases) if with_w else deconv


def lrelu(x, leak=0.2, name="lrelu"):
    """Leaky ReLU, max(x, leak * x) (Part 4)."""
    return tf.maximum(x, leak * x, name=name)


def linear(input_, output_size, scope=None, stddev=0.02, bias_start=0.0, with_w=False):
    """A fully connected layer: variables `Matrix` and `bias` (Part 4)."""
    with tf.variable_scope(scope or "Linear"):
        matrix = tf.get_variable("Matrix", [input_.shape[-1], output_size], tf.float32,
                                 tf.random_normal_initializer(stddev=stddev))
        bias = tf.get_variable("bias", [output_size],
                               initializer=tf.constant_initializer(bias_start))
        out = tf.matmul(input_, matrix) + bias
        return (out, matrix, bias) if with_w else out


# ----------------------------------------------------------------------------------------------
# The dataset
# ----------------------------------------------------------------------------------------------

class DatasetError(Exception):
    """A dataset that cannot be trained on; the message names the folder or file and the fix."""


def dataset_files(root):
    """Every .png/.jpg/.jpeg file (any case) below `root`, searched recursively, sorted (Part 4).

    The post looked only at the top of the folder, while the alignment step wrote into
    sub-folders, so its own commands found no images. Hidden files (names starting with a dot:
    our temp files, macOS `._` metadata) are left out; symlinked folders are followed, each real
    folder once (see `gantut_utils.image_files`).
    """
    return [os.path.join(root, path) for path in image_files(root)]


def decode_image(path, image_size, c_dim, is_crop):
    """Decode one file into an `image_size` square uint8 array (Part 4 data helper).

    Returns (pixels, None), or (None, reason) for a file that cannot be used. A file of the
    wrong size without `is_crop` is reported as such, for the caller to refuse.
    """
    try:
        pixels = np.asarray(open_image(path, c_dim))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        return None, "unreadable (%s)" % (err,)
    pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], c_dim)
    if is_crop:
        pixels = center_crop(pixels, min(pixels.shape[:2]), resize_w=image_size)
    elif pixels.shape[:2] != (image_size, image_size):
        return None, "wrong size"
    return pixels, None


def dataset_fingerprint(files, image_size, c_dim, is_crop):
    """A short hash of the file list (names, sizes, times) and decode settings (Part 4 helper).

    The cache is rebuilt whenever it changes: a file added, removed or rewritten.
    """
    digest = hashlib.sha1(json.dumps([CACHE_VERSION, image_size, c_dim, is_crop]).encode())
    for path in files:
        try:
            stat = os.stat(path)
            size, mtime = stat.st_size, stat.st_mtime_ns
        except OSError:  # a broken link: it is reported as unreadable when decoded
            size, mtime = -1, -1
        digest.update(os.fsencode(path) + (b"\0%d\0%d\n" % (size, mtime)))
    return digest.hexdigest()[:16]


def decode_checked(path, image_size, c_dim, is_crop):
    """decode_image for the image cache: (pixels, None) or (None, reason); a wrong-size image
    without `is_crop` stops the build with a message saying what to do (Part 4)."""
    pixels, reason = decode_image(path, image_size, c_dim, is_crop)
    if reason == "wrong size":
        raise DatasetError(wrong_size_message(path, image_size))
    return pixels, reason


def decode_rows_to_cache(items, cache_path, row_shape, decode, workers, label="decoding images",
                         unit="images"):
    """Decode each of `items` into one row of a uint8 .npy array at `cache_path`; return (count,
    skipped) (Part 4; shared with the pix2pix stage's pair cache).

    `decode(item)` returns (uint8 array of `row_shape`, None) or (None, reason). An item with a
    reason is skipped with one warning line and listed in `skipped` as "item: reason". Threads
    decode in parallel (Pillow releases the GIL); rows go straight into a memory-mapped file, so
    even CelebA (2.5 GB at 64x64) never sits in memory twice and a set larger than RAM still
    fits; the file is renamed into place only when complete.
    """
    shape = (len(items),) + tuple(row_shape)
    skipped = []
    count = 0
    progress = Progress(label, len(items), unit)
    with atomic_path(cache_path) as tmp, \
            concurrent.futures.ThreadPoolExecutor(workers) as pool:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        for start in range(0, len(items), 1024):
            chunk = items[start:start + 1024]
            for item, (pixels, reason) in zip(chunk, pool.map(decode, chunk)):
                if pixels is None:
                    progress.note("warning: skipping %s: %s" % (item, reason))
                    skipped.append("%s: %s" % (item, reason))
                else:
                    array[count] = pixels
                    count += 1
                progress.advance()
        array.flush()
        del array
    return count, skipped


def wrong_size_message(path, image_size):
    """The message for an image that is not `image_size` square and `--is_crop` is off."""
    with Image.open(path) as img:
        width, height = img.size
    return ("%s is %dx%d, not %dx%d. Run with --is_crop to centre-crop and resize every image, "
            "or align the faces first: ./align_faces.py RAW align innerEyesAndBottomLip ALIGNED "
            "--size %d" % (path, width, height, image_size, image_size, image_size))


def load_dataset(root, image_size, c_dim=3, is_crop=False, train_size=float("inf"),
                 cache_dir=None, workers=1):
    """The training images of folder `root` as an N x size x size x c_dim uint8 array (Part 4).

    The array is decoded once and cached in `cache_dir` (memory-mapped on later runs, so start-up
    is instant and RAM holds only what training touches); a change to the folder's files
    rebuilds it. `train_size` caps the image count (the first files in sorted order).
    Raises DatasetError, naming the folder or file, for a missing or empty folder or a wrong-size
    image without `is_crop`.
    """
    if not os.path.isdir(root):
        raise DatasetError("dataset folder %s does not exist. Point --dataset at a folder of "
                           ".png/.jpg images (e.g. the output of align_faces.py), or use "
                           "--dataset demo for the built-in cartoon faces." % root)
    files = dataset_files(root)
    if np.isfinite(train_size):
        files = files[:int(train_size)]
    if not files:
        raise DatasetError("dataset folder %s holds no .png/.jpg/.jpeg images (sub-folders "
                           "included). Copy or align images into it (./align_faces.py RAW align "
                           "innerEyesAndBottomLip %s), or use --dataset demo." % (root, root))
    decode = functools.partial(decode_checked, image_size=image_size, c_dim=c_dim, is_crop=is_crop)
    images, skipped, info_path = cached_rows(
        root, cache_dir, dataset_fingerprint(files, image_size, c_dim, is_crop), files,
        (image_size, image_size, c_dim), decode, workers)
    if skipped:
        print("%d unreadable image(s) in %s skipped (listed in %s)"
              % (len(skipped), root, info_path), file=sys.stderr)
    return images


def cached_rows(root, cache_dir, key, items, row_shape, decode, workers, unit="images",
                skipped_before=()):
    """The rows `decode` makes of `items`, as a memory-mapped uint8 array cached in `cache_dir`
    (default `root`) under the fingerprint `key` of their files (Part 4; shared with the pix2pix
    stage's pairs). Returns (array, skipped entries, path of the cache's info file).

    Decoded once (decode_rows_to_cache); later runs map the file, so start-up is instant and RAM
    holds only what training touches. A new key (the files changed) rebuilds it and removes the
    old one. `skipped_before` lists items already dropped, kept in the info file with the rest.
    """
    cache_dir = cache_dir or root
    os.makedirs(cache_dir, exist_ok=True)
    cache_path = os.path.join(cache_dir, "images_%dpx_%dch_%s.npy"
                              % (row_shape[0], row_shape[-1], key))
    info_path = cache_path[:-len(".npy")] + ".json"
    info = read_json(info_path)
    if info is None or not os.path.exists(cache_path):
        remove_stale_caches(cache_dir)
        count, skipped = decode_rows_to_cache(items, cache_path, row_shape, decode, workers,
                                              "decoding " + unit, unit)
        info = {"root": root, "count": count, "skipped": list(skipped_before) + skipped}
        with atomic_path(info_path) as tmp, open(tmp, "w") as out:
            json.dump(info, out, indent=1)
    return np.load(cache_path, mmap_mode="r")[:info["count"]], info["skipped"], info_path


def remove_stale_caches(cache_dir):
    """Delete image caches of an earlier file list, so they do not pile up (Part 4 helper)."""
    for name in os.listdir(cache_dir):
        if name.startswith("images_") and name.endswith((".npy", ".json")):
            os.remove(os.path.join(cache_dir, name))


def epoch_batches(rows, batch_size, seed, epoch, start=0):
    """Yield (index, image indices) for the batches of one epoch, from batch `start` (Part 4).

    `rows` are the indices of the images to train on (an int n stands for all of 0..n-1).
    Each epoch is a fresh shuffle that depends only on (seed, epoch), so a resumed run sees the
    same order and can skip exactly the batches it already trained on. The last partial batch
    is dropped, as in the post.
    """
    rows = np.arange(rows) if np.isscalar(rows) else np.asarray(rows)
    order = rows[np.random.default_rng([seed, epoch]).permutation(len(rows))]
    for index in range(start, len(rows) // batch_size):
        yield index, np.sort(order[index * batch_size:(index + 1) * batch_size])


def prefetch(items, depth=2):
    """Run the iterator `items` in a background thread, `depth` items ahead (Part 4 helper).

    Cutting and scaling the next batch then overlaps the current training step, so the session
    never waits on input. An exception in the iterator is raised in the consumer.
    """
    buffer = queue.Queue(maxsize=depth)
    done = object()

    def produce():
        try:
            for item in items:
                buffer.put(item)
        except BaseException as err:  # handed to the consumer, which re-raises it
            buffer.put(err)
        buffer.put(done)

    threading.Thread(target=produce, daemon=True).start()
    while True:
        item = buffer.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def feed_batches(images, batch_size, seed, epoch, start=0, rows=None, augment=False):
    """Yield (index, float batch in [-1, 1]) for one epoch, prepared ahead of time (Part 4).

    `rows` limits training to those images (the rest held out for evaluation); default all.
    With `augment`, each batch is flipped and jittered (augment_images) with random draws
    that depend only on (seed, epoch, batch), so a resumed run sees the same batches.
    """
    rows = len(images) if rows is None else rows

    def batch_pixels(index, batch):
        pixels = images[batch]
        if augment:
            pixels = augment_images(pixels, np.random.default_rng([seed, epoch, index]))
        return transform(pixels, is_crop=False)
    return prefetch((index, batch_pixels(index, batch))
                    for index, batch in epoch_batches(rows, batch_size, seed, epoch, start))


def augment_images(images, rng, jitter=1.1):
    """Random horizontal flips and jitter of a uint8 batch, drawn per image (WGAN-GP addition,
    after the logo walkthrough's augmentation for small data sets).

    Each image is mirrored with probability 1/2, then scaled up by `jitter` (about 10%) and
    cropped back to its size at a random offset; `jitter` 1 turns the jitter off. Faces stay
    upright: a vertical flip or rotation would teach G upside-down faces.
    """
    out = np.empty_like(images)
    size = images.shape[1]
    big = int(round(size * jitter))
    flips = rng.random(len(images)) < 0.5
    offsets = rng.integers(0, big - size + 1, (len(images), 2))
    for i, image in enumerate(images):
        if flips[i]:
            image = image[:, ::-1]
        if big > size:
            scaled = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
            image = np.asarray(scaled.resize((big, big), Image.BILINEAR)).reshape(
                big, big, image.shape[-1])
            top, left = offsets[i]
            image = image[top:top + size, left:left + size]
        out[i] = image
    return out
