"""Image completion with the trained DCGAN: the goal Part 1 of "Generative Adversarial Network
(GAN) in TensorFlow" sets out (after B. Amos's "Image Completion with Deep Learning in
TensorFlow"): the masks (`make_mask`), the losses on G and D (`Completion`, built over the
model), the search over z (`Completion.complete`) and the output files (`complete_images`).
Follows Brandon Amos's dcgan-completion.tensorflow (github.com/bamos/dcgan-completion.tensorflow,
MIT License, Copyright (c) 2016 Brandon Amos, on Taehoon Kim's DCGAN-tensorflow, Copyright (c)
2016 Taehoon Kim; parts of it under Apache 2.0).

    ./gantut_trainer.py --complete --dataset demo --mask center --completions_dir completions
"""
import extras.machine.tfenv  # noqa: F401  (first: TensorFlow then loads without Keras; see it)

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
    """An `image_size` square mask, 1 where a pixel is known, 0 where missing (Part 1), B. Amos's
    `center` (middle half), `left` (half), `random` (20% of the pixels, from `seed`), `grid` (all
    but every 4th pixel of every 4th row), or else a mask image of that size (white = known)."""
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
    """(paths, images): the files matching `pattern` (at most `limit`) as [-1, 1] arrays; an image
    of another size than the model's raises CompletionError unless `is_crop`."""
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


class Completion(object):
    """Part 1's in-painting losses per image, built over `dcgan`'s sampler (G in inference mode)
    and D in inference mode: contextual (L1 to the image where `mask` is 1), perceptual (the loss kind's
    generator loss) and complete = contextual + lam * perceptual, with its gradient with respect
    to z."""

    def __init__(self, dcgan):
        self.dcgan = dcgan
        with tf.name_scope("completion"):
            self.G = dcgan.sampler
            fake_logits = dcgan.inference_d(self.G)
            self.mask = tf.placeholder(tf.float32, dcgan.images.shape, name="mask")
            self.contextual_loss = tf.reduce_sum(
                tf.abs(self.mask * self.G - self.mask * dcgan.images), axis=[1, 2, 3])
            self.perceptual_loss = dcgan.loss_kind.perceptual_loss(fake_logits)
            self.complete_loss = self.contextual_loss + dcgan.lam * self.perceptual_loss
            self.grad_complete_loss = tf.gradients(self.complete_loss, dcgan.z)[0]

    def complete(self, images, mask, n_iter=1000, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8,
                 seed=None, report=None):
        """Fill the pixels where `mask` is 0 in `images` ([-1, 1]) by Adam steps on z clipped
        to [-1, 1], calling `report(i, G(z))` every 50 iterations and at the end; return (G(z),
        contextual loss per iteration and image: n_iter + 1 rows)."""
        dcgan = self.dcgan
        z = np.random.default_rng(seed).uniform(-1, 1, [len(images), dcgan.z_dim])
        feed = {dcgan.images: images, self.mask: np.broadcast_to(mask, images.shape),
                dcgan.is_training: False}
        m, v, history = 0.0, 0.0, []
        progress = Progress("completing %d image(s)" % len(images), n_iter + 1, "iterations")
        for i in range(n_iter + 1):
            feed[dcgan.z] = z
            contextual, generated, grad = dcgan.sess.run(
                [self.contextual_loss, self.G, self.grad_complete_loss], feed)
            history.append(contextual)
            progress.advance()
            if report is not None and (i % 50 == 0 or i == n_iter):
                report(i, generated)
            if i == n_iter:
                return generated, np.array(history)
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad ** 2
            m_hat, v_hat = m / (1 - beta1 ** (i + 1)), v / (1 - beta2 ** (i + 1))
            step = lr * m_hat / (np.sqrt(v_hat) + eps)
            z = np.clip(z - step, -1, 1)


def complete_images(dcgan, imgs, config):
    """Complete the images of the glob `imgs` under `config.mask` into `config.completions_dir`
    (Part 1): before.png, masked.png, generated_IIII.png and blended_IIII.png every 50
    iterations and at the end, and contextual_loss.csv; return the contextual loss history."""
    paths, images = read_images(imgs, dcgan.image_size, dcgan.c_dim, config.is_crop,
                                config.batch_size)
    mask = make_mask(config.mask, dcgan.image_size, config.seed)
    out, grid = config.completions_dir, grid_shape(len(images))
    os.makedirs(out, exist_ok=True)
    save_images(images, grid, os.path.join(out, "before.png"))
    save_images(images * mask, grid, os.path.join(out, "masked.png"))

    def report(iteration, generated):
        save_images(generated, grid, os.path.join(out, "generated_%04d.png" % iteration))
        blended = mask * images + (1 - mask) * generated
        save_images(blended, grid, os.path.join(out, "blended_%04d.png" % iteration))

    _, history = Completion(dcgan).complete(images, mask, n_iter=config.nIter,
                                            seed=config.seed, report=report)
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
