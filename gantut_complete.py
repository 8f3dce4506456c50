"""Image completion with the trained DCGAN: the goal Part 1 of "Generative Adversarial Network
(GAN) in TensorFlow" sets out (after B. Amos's "Image Completion with Deep Learning in
TensorFlow"). Follows Brandon Amos's dcgan-completion.tensorflow (github.com/bamos/
dcgan-completion.tensorflow, MIT License, Copyright (c) 2016 Brandon Amos, on Taehoon Kim's
DCGAN-tensorflow, Copyright (c) 2016 Taehoon Kim; parts of it under Apache 2.0).

Given faces with a region missing, search the noise space for the z whose G(z) best matches the
known pixels (contextual loss) while still looking real to D (perceptual loss), then paste G(z)
into the hole:

    ./gantut_trainer.py --complete --imgs 'aligned/*.png' --mask center --outDir completions

This module holds the whole method: the masks (`make_mask`), the losses as graph code on the
DCGAN's G and D (`build_completion`), the search over z (`complete`), and the output
(`complete_images`).
"""
import extras.tfenv  # noqa: F401  (first: TensorFlow then loads without Keras; see it)

import csv
import glob
import os

import numpy as np
import tensorflow.compat.v1 as tf

from gantut_imgfuncs import get_image, grid_shape, open_image, save_images
from extras.utils import Progress, atomic_path

MASK_TYPES = ("center", "left", "random", "grid")


class CompletionError(Exception):
    """Input that cannot be completed; the message names the file or flag and the fix."""


def make_mask(mask_type, image_size, seed=None):
    """An `image_size` square mask, 1 where a pixel is known and 0 where it is missing (Part 1).

    `center`: the middle half of the face; `left`: the left half; `random`: 20% of the pixels,
    drawn from `seed`; `grid`: all but every 4th pixel of every 4th row; anything else is read as a
    mask image of the same size (white = known, black = missing). The shapes are B. Amos's.
    """
    mask = np.ones((image_size, image_size), np.float32)
    if mask_type == "center":
        low, high = int(image_size * 0.25), int(image_size * 0.75)
        mask[low:high, low:high] = 0
    elif mask_type == "left":
        mask[:, :image_size // 2] = 0
    elif mask_type == "random":
        mask[np.random.default_rng(seed).random((image_size, image_size)) < 0.2] = 0
    elif mask_type == "grid":
        mask[:] = 0
        mask[::4, ::4] = 1
    else:
        mask = read_mask_image(mask_type, image_size)
    return mask[:, :, None]


def read_mask_image(path, image_size):
    """A mask image file as 0/1 floats; refused unless it is `image_size` square (Part 1)."""
    if not os.path.isfile(path):
        raise CompletionError("--mask %s is neither one of %s nor an image file"
                              % (path, ", ".join(MASK_TYPES)))
    pixels = np.asarray(open_image(path, c_dim=1))
    if pixels.shape != (image_size, image_size):
        raise CompletionError("mask %s is %dx%d, but the model makes %dx%d images; draw the "
                              "mask at that size (white = keep, black = fill)"
                              % (path, pixels.shape[1], pixels.shape[0], image_size, image_size))
    return (pixels >= 128).astype(np.float32)


def read_images(pattern, image_size, c_dim, is_crop, limit):
    """The files matching `pattern` (at most `limit`) as [-1, 1] arrays; returns (paths, images).

    Images of another size than the model's are refused unless `is_crop` is set.
    """
    paths = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
    if not paths:
        raise CompletionError("--imgs %r matches no files. Pass --imgs 'FOLDER/*.png' (quoted), "
                              "or --dataset, whose .png images are the default" % pattern)
    if len(paths) > limit:
        print(" [*] %d files match --imgs; completing the first %d (--batch_size)"
              % (len(paths), limit))
        paths = paths[:limit]
    images = [get_image(path, image_size, is_crop, c_dim) for path in paths]
    for path, image in zip(paths, images):
        if image.shape[:2] != (image_size, image_size):
            raise CompletionError(
                "%s is %dx%d, but the checkpoint was trained on %dx%d images. Use --is_crop to "
                "centre-crop and resize, or align it with align_faces.py --size %d"
                % (path, image.shape[1], image.shape[0], image_size, image_size, image_size))
    return paths, np.stack(images)


def build_completion(dcgan):
    """The in-painting losses of Part 1 (after B. Amos's "deep completion") on `dcgan`'s G and
    D, built once.

    `mask` is 1 where a pixel is known, 0 where it is missing. Per image:
    contextual loss = L1 distance between G(z) and the image on the known pixels;
    perceptual loss = the generator loss (how fake D finds G(z); `g_loss` is its batch mean;
    with WGAN-GP minus the critic's score);
    complete loss = contextual + lam * perceptual, and its gradient with respect to z.
    Everything runs in inference mode, so the images of a batch do not affect each other.
    """
    if hasattr(dcgan, "complete_loss"):
        return
    with tf.name_scope("completion"):
        dcgan.mask = tf.placeholder(tf.float32, dcgan.images.shape, name="mask")
        dcgan.contextual_loss = tf.reduce_sum(
            tf.abs(dcgan.mask * dcgan.G - dcgan.mask * dcgan.images), axis=[1, 2, 3])
        if dcgan.loss == "wgan-gp":
            dcgan.perceptual_loss = -dcgan.D_logits_[:, 0]
        else:
            dcgan.perceptual_loss = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(
                logits=dcgan.D_logits_, labels=tf.ones_like(dcgan.D_logits_)), axis=1)
        dcgan.complete_loss = dcgan.contextual_loss + dcgan.lam * dcgan.perceptual_loss
        dcgan.grad_complete_loss = tf.gradients(dcgan.complete_loss, dcgan.z)[0]


def complete(dcgan, images, mask, n_iter=1000, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8,
             seed=None, report=None):
    """Fill the pixels where `mask` is 0 in `images` ([-1, 1]) with what `dcgan`'s G knows
    (Part 1).

    Adam steps on z (not on the weights), z clipped to [-1, 1] after each step, as in
    B. Amos's method, with a progress line (rate, ETA). `report(i, G(z))` is called every 50
    iterations and at the end. Returns (G(z), contextual loss per image and iteration:
    n_iter + 1 rows).
    """
    build_completion(dcgan)
    z = np.random.default_rng(seed).uniform(-1, 1, [len(images), dcgan.z_dim])
    feed = {dcgan.images: images, dcgan.mask: np.broadcast_to(mask, images.shape),
            dcgan.is_training: False}
    m, v, history = 0.0, 0.0, []
    progress = Progress("completing %d image(s)" % len(images), n_iter + 1, "iterations")
    for i in range(n_iter + 1):
        feed[dcgan.z] = z
        contextual, generated, grad = dcgan.sess.run(
            [dcgan.contextual_loss, dcgan.G, dcgan.grad_complete_loss], feed)
        history.append(contextual)
        progress.advance()
        if report is not None and (i % 50 == 0 or i == n_iter):
            report(i, generated)
        if i == n_iter:
            return generated, np.array(history)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad ** 2
        step = lr * (m / (1 - beta1 ** (i + 1))) / (np.sqrt(v / (1 - beta2 ** (i + 1))) + eps)
        z = np.clip(z - step, -1, 1)


def complete_images(dcgan, config):
    """Complete the images of `config.imgs` under `config.mask`, writing to `config.outDir` (Part 1).

    Writes before.png, masked.png, generated_IIII.png and blended_IIII.png every 50 iterations
    and at the end (blended = mask * image + (1 - mask) * G(z)), and contextual_loss.csv with each
    image's contextual loss before and after. Returns that per-image, per-iteration history.
    """
    paths, images = read_images(config.imgs, dcgan.image_size, dcgan.c_dim, config.is_crop,
                                config.batch_size)
    mask = make_mask(config.mask, dcgan.image_size, config.seed)
    out, grid = config.outDir, grid_shape(len(images))
    os.makedirs(out, exist_ok=True)
    save_images(images, grid, os.path.join(out, "before.png"))
    save_images(images * mask, grid, os.path.join(out, "masked.png"))

    def report(iteration, generated):
        save_images(generated, grid, os.path.join(out, "generated_%04d.png" % iteration))
        blended = mask * images + (1 - mask) * generated
        save_images(blended, grid, os.path.join(out, "blended_%04d.png" % iteration))

    _, history = complete(dcgan, images, mask, n_iter=config.nIter, seed=config.seed,
                          report=report)
    write_loss_table(os.path.join(out, "contextual_loss.csv"), paths, history)
    return history


def write_loss_table(path, image_paths, history):
    """Print and write each image's contextual loss at the first and last iteration (Part 1)."""
    print("%-40s %12s %12s" % ("image", "loss before", "loss after"))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as out:
        table = csv.writer(out)
        table.writerow(["image", "contextual_loss_before", "contextual_loss_after"])
        for image_path, before, after in zip(image_paths, history[0], history[-1]):
            table.writerow([image_path, "%.4f" % before, "%.4f" % after])
            print("%-40s %12.4f %12.4f" % (os.path.basename(image_path), before, after))
