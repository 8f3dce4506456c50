"""The training data (ours): images decoded once into a uint8 array cached beside the run and
memory-mapped; batches cut from it in a background thread.

- `load_dataset`: a folder's images as one uint8 array, through `cached_rows`, the cache every
  stage uses;
- `feed_batches`, `epoch_batches`, `prefetch`: one epoch's batches, in an order that depends
  only on (seed, epoch);
- `augment_images`: random flips and jitter;
- `split_holdout`, `split_rows`: the fixed share of images training never sees.
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
from PIL import Image

from gantut_datafuncs import dataset_files
from gantut_imgfuncs import center_crop, open_image
from extras.utils import Progress, atomic_path, read_json

# Bump when the decoding changes, so old caches are rebuilt rather than trusted.
CACHE_VERSION = 2  # 2: 16-bit levels scaled by 1/257, tRNS transparency on white


class DatasetError(Exception):
    """A dataset that cannot be trained on; the message names the folder or file and the fix."""


def decode_image(path, image_size, c_dim, is_crop):
    """Decode one file into an `image_size` square uint8 array: (pixels, None), or (None, reason)
    for a file that cannot be used ("wrong size": not square `image_size` and no `is_crop`)."""
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
    """A short hash of the file list (names, sizes, times) and decode settings: it changes when a
    file is added, removed or rewritten."""
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
    without `is_crop` stops the build with a message saying what to do."""
    pixels, reason = decode_image(path, image_size, c_dim, is_crop)
    if reason == "wrong size":
        raise DatasetError(wrong_size_message(path, image_size))
    return pixels, reason


def decode_rows_to_cache(items, cache_path, row_shape, decode, workers, label="decoding images",
                         unit="images"):
    """Decode `items` in `workers` threads into the rows of a uint8 .npy file at `cache_path`,
    which appears only when complete; return (count, skipped). `decode(item)` gives (row of
    `row_shape`, None) or (None, reason): such an item is warned of and listed in `skipped`."""
    shape = (len(items),) + tuple(row_shape)
    skipped = []
    count = 0
    progress = Progress(label, len(items), unit)
    # Rows go straight into a memory-mapped file: a set larger than RAM still fits.
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
    """The images of folder `root` (the first `train_size` in sorted order) as an N x size x size
    x c_dim uint8 array, through the cache in `cache_dir`. Raises DatasetError, naming the folder
    or file, for a missing or empty folder or a wrong-size image without `is_crop`."""
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


def user_cache_dir():
    """This user's cache folder for decoded images: $XDG_CACHE_HOME/gantut (~/.cache/gantut)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gantut")


def cached_rows(root, cache_dir, key, items, row_shape, decode, workers, unit="images",
                skipped_before=()):
    """The rows `decode` makes of `items`, as a memory-mapped uint8 array cached in `cache_dir`
    (default `root`) under `key`, their files' fingerprint; returns (array, skipped entries, path
    of the info file). `skipped_before`: items already dropped, listed with the skipped."""
    cache_dir = cache_dir or root
    os.makedirs(cache_dir, exist_ok=True)
    cache_path = os.path.join(cache_dir, cache_name(row_shape) + key + ".npy")
    info_path = cache_path[:-len(".npy")] + ".json"
    info = read_json(info_path)
    if info is None or not os.path.exists(cache_path):
        count, skipped = decode_rows_to_cache(items, cache_path, row_shape, decode, workers,
                                              "decoding " + unit, unit)
        info = {"root": os.path.realpath(root), "count": count,
                "skipped": list(skipped_before) + skipped}
        with atomic_path(info_path) as tmp, open(tmp, "w") as out:
            json.dump(info, out, indent=1)
        # Only once the new cache is complete: a run that fails on its way loses nothing.
        retire_older_caches(cache_dir, root, row_shape, keep=info_path)
    return np.load(cache_path, mmap_mode="r")[:info["count"]], info["skipped"], info_path


def cache_name(row_shape):
    """The start of a cache's file name: `images_64px_3ch_` (pairs have 2 x c_dim channels)."""
    return "images_%dpx_%dch_" % (row_shape[0], row_shape[-1])


def retire_older_caches(cache_dir, root, row_shape, keep):
    """Delete the caches in `cache_dir` of an earlier file list of folder `root` with rows of
    `row_shape`, all but the one whose info file is `keep`; their folder is read from their
    info file, so another folder's cache is never touched."""
    prefix = cache_name(row_shape)
    for name in os.listdir(cache_dir):
        info_path = os.path.join(cache_dir, name)
        if not (name.startswith(prefix) and name.endswith(".json")) or info_path == keep:
            continue
        folder = (read_json(info_path) or {}).get("root")
        if folder and os.path.realpath(folder) == os.path.realpath(root):
            for path in (info_path[:-len(".json")] + ".npy", info_path):
                if os.path.exists(path):
                    os.remove(path)


def epoch_batches(rows, batch_size, seed, epoch, start=0):
    """Yield (index, sorted image indices) for one epoch's batches from batch `start`: a shuffle
    of `rows` (indices, or an int n for 0..n-1) that depends only on (seed, epoch), so a resumed
    run sees the same order. The last partial batch is dropped, as in the post."""
    rows = np.arange(rows) if np.isscalar(rows) else np.asarray(rows)
    order = rows[np.random.default_rng([seed, epoch]).permutation(len(rows))]
    for index in range(start, len(rows) // batch_size):
        yield index, np.sort(order[index * batch_size:(index + 1) * batch_size])


def prefetch(items, depth=2):
    """Yield the items of iterator `items`, run in a background thread `depth` items ahead; an
    exception in the iterator is raised here."""
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
    """Yield (index, uint8 batch) for one epoch of the images `rows` (default all), prepared in a
    background thread; with `augment`, flipped and jittered (augment_images) by draws that
    depend only on (seed, epoch, batch). The model scales them (DCGAN.image_bytes)."""
    rows = len(images) if rows is None else rows

    def batch_pixels(index, batch):
        pixels = images[batch]
        if augment:
            pixels = augment_images(pixels, np.random.default_rng([seed, epoch, index]))
        return pixels
    return prefetch((index, batch_pixels(index, batch))
                    for index, batch in epoch_batches(rows, batch_size, seed, epoch, start))


def augment_images(images, rng, jitter=1.1):
    """A uint8 batch with each image mirrored with probability 1/2, then scaled up by `jitter`
    and cropped back to its size at a random offset (`jitter` 1: no jitter); draws from `rng`."""
    # No vertical flips or rotations: they would teach G upside-down faces.
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


def split_holdout(n_images, share):
    """Row indices (train, held out): a `share` of the images drawn from a fixed seed (not
    --seed), so the split is the same across runs and resumes."""
    return split_rows(n_images, int(n_images * share))


def split_rows(n_images, held_out_count, seed=0):
    """Sorted row indices (kept, held out), `held_out_count` of them drawn at random from `seed`."""
    order = np.random.default_rng(seed).permutation(n_images)
    return np.sort(order[held_out_count:]), np.sort(order[:held_out_count])
