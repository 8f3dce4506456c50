"""Part 3: the image import and export helpers, on real files."""
import os

import numpy as np
import pytest
from PIL import Image

from gantut_imgfuncs import (center_crop, get_image, grid_shape, imread, imsave, inverse_transform,
                             merge, open_image, save_images, transform)

COLOUR = (200, 30, 90)


@pytest.mark.parametrize("name,convert,tolerance", [
    ("x.png", dict(mode="RGB"), 0), ("x.png", dict(mode="P", palette=Image.Palette.ADAPTIVE), 0),
    ("x.jpg", dict(mode="RGB"), 3), ("x.jpg", dict(mode="CMYK"), 3)])
def test_imread_returns_the_colour_written_channel_by_channel(tmp_path, name, convert, tolerance):
    path = str(tmp_path / name)
    Image.new("RGB", (7, 5), COLOUR).convert(**convert).save(path)
    pixels = imread(path)
    assert pixels.shape == (5, 7, 3) and pixels.dtype == np.float32
    assert np.abs(pixels - COLOUR).max() <= tolerance  # red, green and blue, not swapped


def test_imread_repeats_a_grey_level_in_all_three_channels(tmp_path):
    path = str(tmp_path / "grey.png")
    Image.new("L", (7, 5), 77).save(path)
    rgb, grey = imread(path), imread(path, c_dim=1)
    assert rgb.shape == (5, 7, 3) and grey.shape == (5, 7, 1)
    assert np.all(rgb == 77) and np.all(grey == 77)


@pytest.mark.parametrize("alpha", [0, 128, 255])
def test_imread_flattens_transparency_onto_white(tmp_path, alpha):
    path = str(tmp_path / "clear.png")
    Image.new("RGBA", (3, 3), COLOUR + (alpha,)).save(path)
    over_white = np.array(COLOUR) * alpha / 255 + 255 * (1 - alpha / 255)
    assert np.abs(imread(path) - over_white).max() <= 1


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
