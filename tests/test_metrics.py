"""Tests of extras/run/metrics.py (quality figures beside Part 5): real dlib models, a real photo
of a face (scikit-image's astronaut) aligned by align_faces.py, and photos without faces."""
import cv2
import dlib
import numpy as np
import pytest
import skimage.data

import align_faces
import extras.run.metrics as metrics
from extras.run.evaluation import BackgroundEvaluation

SET_SIZE = 160


def varied_copy(crop, rng):
    """The aligned crop as another aligned photo of the face might come: shifted by a few pixels,
    turned and scaled a little, lit brighter or darker, maybe mirrored."""
    matrix = cv2.getRotationMatrix2D((32, 32), rng.uniform(-6, 6), rng.uniform(0.93, 1.07))
    matrix[:, 2] += rng.uniform(-2.5, 2.5, 2)
    copy = cv2.warpAffine(crop, matrix, (64, 64), borderMode=cv2.BORDER_REPLICATE)
    copy = np.clip(copy * rng.uniform(0.7, 1.3), 0, 255).astype(np.uint8)
    return copy[:, ::-1] if rng.random() < 0.5 else copy


def with_noise(images, sigma, seed=0):
    noisy = images + np.random.default_rng(seed).normal(0, sigma, images.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def photo_crops(photo, count, rng):
    """Random square crops of a photo, scaled to 64 px."""
    height, width = photo.shape[:2]
    crops = []
    for _ in range(count):
        side = int(rng.integers(64, min(height, width)))
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        crops.append(cv2.resize(photo[top:top + side, left:left + side], (64, 64),
                                interpolation=cv2.INTER_AREA))
    return np.stack(crops)


@pytest.fixture(scope="module")
def face_crop():
    crop, failure = align_faces.align_image(skimage.data.astronaut(), 64)
    assert failure is None
    return crop


@pytest.fixture(scope="module")
def real(face_crop):
    rng = np.random.default_rng(0)
    return np.stack([varied_copy(face_crop, rng) for _ in range(SET_SIZE)])


@pytest.fixture(scope="module")
def noise():
    return np.random.default_rng(1).integers(0, 256, (SET_SIZE, 64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def no_faces():
    rng = np.random.default_rng(2)
    photos = [skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    return np.concatenate([photo_crops(photo, 30, rng) for photo in photos])


# --- Inputs ---------------------------------------------------------------------------------

def test_float_images_are_refused_with_the_conversion_named(real):
    with pytest.raises(ValueError, match="to_uint8"):
        metrics.face_rate(real / 127.5 - 1.0)


def test_gray_images_count_as_gray_rgb(face_crop):
    gray = cv2.cvtColor(face_crop, cv2.COLOR_RGB2GRAY)[None, :, :, None]
    assert np.array_equal(metrics.rgb_images(gray)[0], np.dstack([gray[0, :, :, 0]] * 3))
    assert metrics.face_rate(gray) == 1.0


# --- Face rate ------------------------------------------------------------------------------

@pytest.mark.parametrize("change", ["none", "shifted", "mirrored", "brighter", "darker"])
def test_face_rate_of_a_real_aligned_face_is_one(face_crop, change):
    shift = np.float32([[1, 0, 3], [0, 1, -2]])
    changed = {"none": face_crop,
               "shifted": cv2.warpAffine(face_crop, shift, (64, 64),
                                         borderMode=cv2.BORDER_REPLICATE),
               "mirrored": face_crop[:, ::-1],
               "brighter": np.clip(face_crop * 1.3, 0, 255).astype(np.uint8),
               "darker": (face_crop * 0.6).astype(np.uint8)}[change]
    assert metrics.face_rate(changed[None]) == 1.0


def test_face_rate_of_real_faces_near_one_and_of_noise_and_other_photos_near_zero(
        real, noise, no_faces):
    assert metrics.face_rate(real) >= 0.95
    assert metrics.face_rate(noise) <= 0.05
    assert metrics.face_rate(no_faces) <= 0.05


# --- Face descriptors and Frechet distance --------------------------------------------------

def test_descriptors_equal_dlibs_own(real):
    images = real[:6]
    models = align_faces.load_models()
    dlib_network = dlib.face_recognition_model_v1(metrics.descriptor_model_path())
    expected = [np.array(dlib_network.compute_face_descriptor(big, models.predictor(big, box)))
                for big, box, _ in metrics.framed_faces(images)]
    ours = metrics.descriptor_network(bf16=False)(metrics.face_chips(images)[1])
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_bfloat16_descriptors_keep_the_face_figures(real):
    """The figures' process computes descriptors in bfloat16 where the CPU has it: face_fd of
    like and unlike sets as float32 gives it, to 2% (training's figures moved by 1% at most,
    their epoch-to-epoch swing is 10x that; on CPUs without bfloat16 instructions oneDNN
    emulates them, same rounding)."""
    _, real_chips = metrics.face_chips(real)
    _, noisy_chips = metrics.face_chips(with_noise(real, 24, seed=2))
    figures = {}
    for bf16 in (False, True):
        describe = metrics.descriptor_network(bf16)
        real_descriptors, noisy_descriptors = describe(real_chips), describe(noisy_chips)
        figures[bf16] = [metrics.frechet_distance(real_descriptors[::2], real_descriptors[1::2]),
                         metrics.frechet_distance(real_descriptors, noisy_descriptors)]
    split, noisy = figures[False]
    assert split < noisy
    np.testing.assert_allclose(figures[True], figures[False], rtol=0.02)


def test_frechet_distance_of_gaussians_matches_the_formula():
    rng = np.random.default_rng(0)
    unit = rng.standard_normal((20000, 4))
    shifted = rng.standard_normal((20000, 4)) + [1.0, 0, 0, 0]
    wider = 2.0 * rng.standard_normal((20000, 4))
    # |mu_a - mu_b|^2 = 1; tr(I + 4I - 2 * 2I) = 4
    assert metrics.frechet_distance(unit, shifted) == pytest.approx(1.0, abs=0.05)
    assert metrics.frechet_distance(unit, wider) == pytest.approx(4.0, abs=0.2)
    assert metrics.frechet_distance(unit, unit) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_of_a_single_row_is_nan_not_a_crash():
    rows = np.random.default_rng(0).standard_normal((5, 128))
    assert np.isnan(metrics.frechet_distance(rows[:1], rows))
    assert np.isnan(metrics.frechet_distance(rows, rows[:0]))
    assert np.isfinite(metrics.frechet_distance(rows[:2], rows))


def test_frechet_distance_is_finite_for_fewer_samples_than_dimensions():
    rng = np.random.default_rng(0)
    small_a, small_b = rng.standard_normal((10, 128)), rng.standard_normal((10, 128))
    collapsed = np.repeat(small_a[:1], 10, axis=0)
    for other in (small_b, collapsed):
        distance = metrics.frechet_distance(small_a, other)
        assert np.isfinite(distance) and distance > 0


def test_face_fd_real_halves_small_noise_large_and_growing_with_noise(real, noise):
    split = metrics.real_split_frechet_distance(real, seed=0)
    to_noise = metrics.face_frechet_distance(real, noise)
    assert 10 * split < to_noise
    half_a, half_b = real[::2], real[1::2]
    growing = [metrics.face_frechet_distance(half_a, with_noise(half_b, sigma))
               for sigma in (4, 16, 64)]
    assert growing == sorted(growing) and growing[0] > 0


# --- Sliced Wasserstein distance ------------------------------------------------------------

def test_swd_levels_follow_the_image_size(real):
    levels, average = metrics.sliced_wasserstein_distance(real[:20], real[20:40])
    assert sorted(levels) == [16, 32, 64]
    assert average == pytest.approx(np.mean(list(levels.values())))
    small = real[:20, ::2, ::2]
    assert sorted(metrics.sliced_wasserstein_distance(small, small)[0]) == [16, 32]


def test_swd_of_a_set_with_itself_is_small_and_with_noise_large(real, noise):
    itself = metrics.sliced_wasserstein_distance(real, real, seed=0)[1]
    to_noise = metrics.sliced_wasserstein_distance(real, noise, seed=0)[1]
    assert 0 < itself and 10 * itself < to_noise


def test_swd_grows_with_blur_and_with_noise(real):
    half_a, half_b = real[::2], real[1::2]
    floor_levels, floor = metrics.sliced_wasserstein_distance(half_a, half_b)
    blurred = np.stack([cv2.GaussianBlur(image, (5, 5), 0) for image in half_b])
    blur_levels, blur = metrics.sliced_wasserstein_distance(half_a, blurred)
    # Blur takes the finest detail away, which the full-size level holds.
    assert blur_levels[64] > 2 * floor_levels[64] and blur > floor
    growing = [metrics.sliced_wasserstein_distance(half_a, with_noise(half_b, sigma))[1]
               for sigma in (4, 16, 64)]
    assert growing == sorted(growing) and growing[0] > floor


def test_swd_and_fd_of_flat_images_are_finite(real):
    """A collapsed generator's output: one flat colour."""
    flat = np.full((40, 64, 64, 3), 200, np.uint8)
    levels, average = metrics.sliced_wasserstein_distance(flat, real[:40])
    assert np.isfinite(list(levels.values())).all() and average > 0
    assert np.isfinite(metrics.face_frechet_distance(flat, real[:40]))


def test_patches_are_normalised_to_float64_accuracy():
    """A level's patch set as large as 1,000 images give (6 M values a channel), far from 0:
    each channel's mean and deviation, and the sorted projections of the patches they
    normalise, as float64 arithmetic has them."""
    rng = np.random.default_rng(0)
    patches = (rng.normal(100, 40, (128000, 147)) * np.tile([1, 0.5, 2], 49)).astype(np.float32)
    exact = patches.reshape(len(patches), -1, 3).astype(np.float64)
    mean, deviation = metrics.channel_statistics(patches)
    np.testing.assert_allclose(mean, exact.mean(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(deviation, exact.std(axis=(0, 1)), rtol=1e-6)
    directions = rng.standard_normal((147, 8))
    directions /= np.linalg.norm(directions, axis=0)
    normalised = ((exact - exact.mean(axis=(0, 1))) / exact.std(axis=(0, 1))).reshape(
        len(patches), -1)
    projected = metrics.sorted_projections(patches, (mean, deviation),
                                           directions.astype(np.float32))
    assert np.abs(projected - np.sort(directions.T @ normalised.T, axis=1)).max() < 1e-4


def test_swd_depends_only_on_the_seed(real, noise):
    first = metrics.sliced_wasserstein_distance(real[:30], noise[:30], seed=5)
    assert metrics.sliced_wasserstein_distance(real[:30], noise[:30], seed=5) == first
    assert metrics.sliced_wasserstein_distance(real[:30], noise[:30], seed=6) != first


# --- Everything at once ---------------------------------------------------------------------

def test_evaluate_tells_real_faces_from_noise(real, noise):
    half_a, half_b = real[::2], real[1::2]
    good = metrics.evaluate(half_a, half_b, seed=0)
    bad = metrics.evaluate(noise[:len(half_b)], half_b, seed=0)
    assert set(good) == {"face_rate", "face_rate_real", "face_fd", "face_fd_real_split",
                         "swd", "swd_64", "swd_32", "swd_16"}
    assert all(isinstance(value, float) for value in good.values())
    assert good["face_rate"] >= 0.95 and bad["face_rate"] <= 0.05
    # The real set's own figures do not depend on what is compared with it.
    for name in ("face_rate_real", "face_fd_real_split"):
        assert good[name] == bad[name]
    assert bad["face_fd"] > 10 * good["face_fd"]
    assert bad["swd"] > 5 * good["swd"]


def test_figures_computed_in_the_background_are_those_computed_here(real, noise):
    """What the training run logs (extras.run.evaluation, a process of its own) is what
    `evaluate` gives in this process, the real set's figures cached there included."""
    half_a, half_b = real[::2], real[1::2]
    evaluation = BackgroundEvaluation()
    try:
        evaluation.submit(0, 10, half_a, half_b)
        evaluation.submit(1, 20, noise[:len(half_b)], half_b)
        done = evaluation.finished(wait=True)
    finally:
        evaluation.close()
    assert [(epoch, step) for epoch, step, _ in done] == [(0, 10), (1, 20)]
    for (_, _, figures), generated in zip(done, (half_a, noise[:len(half_b)])):
        here = metrics.evaluate(generated, half_b, seed=0)
        assert figures.keys() == here.keys()
        for name, value in here.items():
            assert figures[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
