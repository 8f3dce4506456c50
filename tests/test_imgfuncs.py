"""Part 3: the image import and export helpers, on real files."""
import os

import numpy as np
import pytest
from PIL import Image

from gantut_imgfuncs import (AXIS_COLOUR, EPOCH_COLOUR, SERIES_COLOURS, center_crop, get_image,
                             grid_shape, imread, imsave, inverse_transform, loss_range, merge,
                             nice_ticks, open_image, plot_losses, save_images, smooth, tick_label,
                             transform)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P", "CMYK"])
def test_imread_returns_rgb_floats_for_every_mode(tmp_path, mode):
    path = str(tmp_path / ("x.png" if mode != "CMYK" else "x.jpg"))
    Image.new("RGB", (7, 5), (200, 100, 50)).convert(mode).save(path)
    pixels = imread(path)
    assert pixels.shape == (5, 7, 3) and pixels.dtype == np.float32
    assert pixels.min() >= 0 and pixels.max() <= 255


def test_imread_16_bit_and_grayscale_to_one_channel(tmp_path):
    path = str(tmp_path / "deep.png")
    Image.fromarray(np.full((4, 6), 40000, dtype=np.uint16)).save(path)
    rgb = imread(path)
    assert rgb.shape == (4, 6, 3) and np.allclose(rgb, 40000 >> 8)
    assert imread(path, c_dim=1).shape == (4, 6, 1)


def test_open_image_scales_16_bit_levels_to_8_bit(tmp_path):
    path = str(tmp_path / "levels.png")
    Image.fromarray(np.array([[0, 257 * 100, 65535]], dtype=np.uint16)).save(path)
    assert np.asarray(open_image(path, c_dim=1)).tolist() == [[0, 100, 255]]


def test_open_image_stands_an_exif_rotated_photo_up(tmp_path):
    path = str(tmp_path / "lying.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    lying = np.zeros((8, 16, 3), dtype=np.uint8)
    lying[:, :8] = 255  # the left half white: the top half once stood up
    Image.fromarray(lying).save(path, exif=exif)
    upright = np.asarray(open_image(path))  # the pixels outlive the closed file
    assert upright.shape == (16, 8, 3)
    assert upright[:6].min() > 200 and upright[10:].max() < 50


def test_imread_flattens_transparency_onto_white(tmp_path):
    path = str(tmp_path / "clear.png")
    Image.new("RGBA", (3, 3), (0, 0, 0, 0)).save(path)
    assert np.all(imread(path) == 255)


def test_transform_and_inverse_transform_ranges_and_round_trip():
    image = np.arange(256, dtype=np.float32).reshape(16, 16, 1).repeat(3, axis=2)
    scaled = transform(image, npx=16, is_crop=False)
    assert scaled.min() == -1.0 and scaled.max() == 1.0
    back = inverse_transform(scaled)
    assert back.min() == 0.0 and back.max() == 1.0
    assert np.allclose(back * 255, image, atol=1e-3)


def test_center_crop_takes_the_rounded_centre():
    image = np.arange(10 * 12, dtype=np.float32).reshape(10, 12, 1)
    crop = center_crop(image, 4, resize_w=4)
    # offsets round((10-4)/2)=3 rows, round((12-4)/2)=4 cols; no resize needed at 4x4
    assert np.array_equal(crop, image[3:7, 4:8])


def test_center_crop_resizes_bilinearly_and_keeps_dtype():
    image = np.zeros((20, 30, 3), dtype=np.float32)
    image[:, 15:] = 255
    crop = center_crop(image, 20, resize_w=8)
    assert crop.shape == (8, 8, 3) and crop.dtype == np.float32
    assert crop[:, 0].max() == 0 and crop[:, -1].min() == 255
    assert 0 < crop[0, 3:5].mean() < 255  # the edge is blended, not nearest-neighbour


def test_get_image_crops_any_shape_to_a_square(tmp_path):
    path = str(tmp_path / "wide.jpg")
    Image.new("RGB", (178, 218), (255, 0, 0)).save(path)
    image = get_image(path, 64, is_crop=True)
    assert image.shape == (64, 64, 3)
    assert image[..., 0].mean() > 0.9 and image[..., 1].mean() < -0.9


def test_merge_tiles_row_by_row():
    images = np.stack([np.full((2, 3, 1), i, dtype=np.float32) for i in range(5)])
    grid = merge(images, (2, 3))
    assert grid.shape == (4, 9, 1)
    cells = grid[::2, ::3, 0]
    assert cells.tolist() == [[0, 1, 2], [3, 4, 0]]


def test_save_images_writes_an_exact_uint8_grid(tmp_path):
    images = np.stack([np.full((4, 4, 3), v, dtype=np.float32) for v in (-1.0, 1.0, 0.0, -1.0)])
    path = str(tmp_path / "grid.png")
    assert save_images(images, (2, 2), path) == path
    saved = np.asarray(Image.open(path))
    assert saved.shape == (8, 8, 3)
    assert saved[0, 0, 0] == 0 and saved[0, 4, 0] == 255 and saved[4, 0, 0] == 128
    assert os.listdir(tmp_path) == ["grid.png"]  # no temp file left behind


def test_imsave_grayscale_grid(tmp_path):
    path = str(tmp_path / "gray.png")
    imsave(np.ones((4, 2, 2, 1)), grid_shape(4), path)
    with Image.open(path) as img:
        assert img.mode == "L" and img.size == (4, 4)


@pytest.mark.parametrize("n,expected", [(64, (8, 8)), (10, (3, 4)), (1, (1, 1)), (3, (2, 2))])
def test_grid_shape_is_square_enough(n, expected):
    assert grid_shape(n) == expected


def colour_count(path, colour):
    """How many pixels of the image file at `path` have exactly `colour`."""
    with Image.open(path) as img:
        return int(np.all(np.asarray(img.convert("RGB")) == colour, axis=2).sum())


def noisy_losses(n=300, seed=0):
    rng = np.random.default_rng(seed)
    steps = np.arange(1, n + 1)
    return {"d_loss": (steps, 1.0 + 0.2 * rng.standard_normal(n)),
            "g_loss": (steps, 2.0 + 0.2 * rng.standard_normal(n))}


def test_plot_losses_writes_an_image_of_the_size_asked_in_a_new_folder(tmp_path):
    path = str(tmp_path / "plots" / "losses.png")
    assert plot_losses(noisy_losses(), path, epoch_starts=[0, 100, 200], title="losses",
                       width=640, height=360) == path
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (640, 360)
    assert os.listdir(tmp_path / "plots") == ["losses.png"]  # no temp file left behind


def test_plot_losses_draws_each_series_in_its_own_colour(tmp_path):
    path = str(tmp_path / "losses.png")
    plot_losses(noisy_losses(), path, width=600, height=300)
    assert SERIES_COLOURS[0] != SERIES_COLOURS[1]
    # Far more pixels than the legend's swatch: the curve itself runs across the chart.
    assert colour_count(path, SERIES_COLOURS[0]) > 600
    assert colour_count(path, SERIES_COLOURS[1]) > 600


def test_plot_losses_skips_empty_and_non_finite_series(tmp_path):
    path = str(tmp_path / "losses.png")
    steps = np.arange(50)
    plot_losses({"d_loss": (steps, np.sin(steps)), "empty": ([], []),
                 "nan": ([1, 2, 3], [np.nan, np.inf, -np.inf])}, path)
    assert colour_count(path, SERIES_COLOURS[0]) > 0
    assert colour_count(path, SERIES_COLOURS[1]) == 0 and colour_count(path, SERIES_COLOURS[2]) == 0


@pytest.mark.parametrize("series", [{}, {"d_loss": ([], [])}, {"d_loss": ([1, 2], [np.nan] * 2)}])
def test_plot_losses_without_points_still_writes_an_image(tmp_path, series):
    path = str(tmp_path / "losses.png")
    plot_losses(series, path, title="run 1", width=300, height=200)
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("L"))
    assert pixels.shape == (200, 300) and pixels.min() < 128  # the text is there
    assert os.listdir(tmp_path) == ["losses.png"]


@pytest.mark.parametrize("steps,values", [([7], [0.5]), (np.arange(20), np.full(20, 3.0)),
                                          (np.arange(20), np.zeros(20))])
def test_plot_losses_draws_a_single_point_and_a_constant_loss(tmp_path, steps, values):
    path = str(tmp_path / "losses.png")
    plot_losses({"d_loss": (steps, values)}, path)
    assert colour_count(path, SERIES_COLOURS[0]) > 20  # more than the legend's swatch alone


def test_plot_losses_marks_an_epoch_start_at_its_step(tmp_path):
    path = str(tmp_path / "losses.png")
    steps = np.arange(0, 101)
    plot_losses({"d_loss": (steps, np.full(101, 1.0))}, path, epoch_starts=[0, 50])
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("RGB"))
    # The frame's left and right sides are the columns mostly in the axis colour; step 50 lies
    # halfway between them, and so should the column most in the epoch line colour.
    frame = np.all(pixels == AXIS_COLOUR, axis=2).sum(axis=0)
    left, right = np.flatnonzero(frame > frame.max() / 2)[[0, -1]]
    epoch_line = np.all(pixels == EPOCH_COLOUR, axis=2).sum(axis=0)
    assert epoch_line.max() > 50
    assert abs(np.argmax(epoch_line) - (left + right) / 2) <= 1


def test_smooth_is_tensorboards_debiased_average():
    assert np.allclose(smooth(np.full(10, 4.0), 0.9), 4.0)  # no pull towards 0 at the start
    assert np.allclose(smooth([1.0, 0.0], 0.5), [1.0, 1 / 3])  # (0.5 * 0.5) / (1 - 0.25)
    assert np.array_equal(smooth([1.0, 5.0, 2.0], 0.0), [1.0, 5.0, 2.0])


def test_loss_range_ignores_the_first_spike_and_is_never_empty():
    values = np.r_[500.0, np.linspace(1.0, 2.0, 199)]
    low, high = loss_range([values])
    assert 0.9 < low < 1.0 and 2.0 < high < 2.1
    assert loss_range([np.full(5, 3.0)]) == (2.7, 3.3)
    assert loss_range([np.zeros(3)]) == (-0.5, 0.5)


@pytest.mark.parametrize("low,high,integer,expected", [
    (0.13, 0.97, False, [0.2, 0.4, 0.6, 0.8]), (1, 1500, True, [500, 1000, 1500]),
    (4, 6, True, [4, 5, 6]), (-1.2, 0.3, False, [-1.0, -0.5, 0.0])])
def test_nice_ticks_are_round_and_inside_the_range(low, high, integer, expected):
    ticks, spacing = nice_ticks(low, high, 4, integer=integer)
    assert np.allclose(ticks, expected) and np.isclose(spacing, expected[1] - expected[0])


def test_tick_labels_have_the_decimals_the_spacing_needs():
    assert [tick_label(v, 0.2) for v in (0.2, 0.4)] == ["0.2", "0.4"]
    assert tick_label(1500.0, 500.0) == "1500" and tick_label(-0.0 + 0.0, 0.5) == "0.0"
    assert tick_label(3e-05, 1e-05) == "3e-05"


def test_plot_losses_refuses_a_bad_smoothing_and_a_too_small_image(tmp_path):
    with pytest.raises(ValueError, match="smoothing"):
        plot_losses(noisy_losses(), str(tmp_path / "a.png"), smoothing=1.0)
    with pytest.raises(ValueError, match="no room"):
        plot_losses(noisy_losses(), str(tmp_path / "b.png"), width=80, height=60)
    assert os.listdir(tmp_path) == []
