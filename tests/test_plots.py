"""The loss chart and the progress GIF (additions beside Part 5), on real files."""
import os

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image, ImageSequence

from extras.run.plots import (envelope, label_image, loss_range, plot_losses, smooth,
                              write_progress_gif)

EPOCH_GREY = (150, 150, 150)


def read_rgb(path):
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def series_colour(index):
    """The colour of the `index`-th series: matplotlib's default cycle, as bytes."""
    return tuple(round(255 * c) for c in to_rgb("C%d" % index))


def plot_box(pixels):
    """(top, bottom, left, right) of the chart's black frame: the rows and columns mostly black."""
    black = np.all(pixels == 0, axis=2)
    rows = np.flatnonzero(black.sum(axis=1) > black.sum(axis=1).max() / 2)
    cols = np.flatnonzero(black.sum(axis=0) > black.sum(axis=0).max() / 2)
    return rows[0], rows[-1], cols[0], cols[-1]


def count_in_box(pixels, colour):
    """How many pixels inside the chart's frame (not the legend below it) have exactly `colour`."""
    top, bottom, left, right = plot_box(pixels)
    return int(np.all(pixels[top:bottom, left:right] == colour, axis=2).sum())


def noisy_losses(n=300, seed=0):
    rng = np.random.default_rng(seed)
    steps = np.arange(1, n + 1)
    return {"d_loss": (steps, 1.0 + 0.2 * rng.standard_normal(n)),
            "g_loss": (steps, 2.0 + 0.2 * rng.standard_normal(n))}


def test_plot_losses_writes_a_png_of_the_size_asked_in_a_new_folder(tmp_path):
    path = str(tmp_path / "plots" / "losses.png")
    assert plot_losses(noisy_losses(), path, epoch_starts=[0, 100, 200], title="losses",
                       width=640, height=360) == path
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (640, 360)
    assert os.listdir(tmp_path / "plots") == ["losses.png"]  # no temp file left behind


def test_plot_losses_draws_each_series_in_its_own_colour(tmp_path):
    path = str(tmp_path / "losses.png")
    plot_losses(noisy_losses(), path, width=600, height=300)
    pixels = read_rgb(path)
    assert series_colour(0) != series_colour(1)
    # Far more pixels than a dot: each curve runs across the 560 pixel wide chart.
    assert count_in_box(pixels, series_colour(0)) > 600
    assert count_in_box(pixels, series_colour(1)) > 600


def test_plot_losses_skips_empty_and_non_finite_series(tmp_path):
    path = str(tmp_path / "losses.png")
    steps = np.arange(50)
    plot_losses({"d_loss": (steps, np.sin(steps)), "empty": ([], []),
                 "nan": ([1, 2, 3], [np.nan, np.inf, -np.inf])}, path)
    pixels = read_rgb(path)
    assert count_in_box(pixels, series_colour(0)) > 0
    # Neither curve nor legend entry for the skipped ones.
    assert not np.all(pixels == series_colour(1), axis=2).any()
    assert not np.all(pixels == series_colour(2), axis=2).any()


def test_plot_losses_drops_a_non_finite_point_not_the_curve(tmp_path):
    path = str(tmp_path / "losses.png")
    values = np.ones(100)
    values[50] = np.nan  # one NaN would poison every smoothed point after it
    plot_losses({"d_loss": (np.arange(100), values)}, path)
    pixels = read_rgb(path)
    top, bottom, left, right = plot_box(pixels)
    on_curve = np.all(pixels[top:bottom, left:right] == series_colour(0), axis=2)
    assert on_curve.any(axis=0).mean() > 0.95  # the line spans the whole width


@pytest.mark.parametrize("series", [{}, {"d_loss": ([], [])}, {"d_loss": ([1, 2], [np.nan] * 2)}])
def test_plot_losses_without_points_still_writes_an_image(tmp_path, series):
    path = str(tmp_path / "losses.png")
    plot_losses(series, path, title="run 1", width=300, height=200)
    pixels = np.asarray(Image.open(path).convert("L"))
    assert pixels.shape == (200, 300) and pixels.min() < 128  # the text is there
    assert os.listdir(tmp_path) == ["losses.png"]


@pytest.mark.parametrize("steps,values", [([7], [0.5]), (np.arange(20), np.full(20, 3.0)),
                                          (np.arange(20), np.zeros(20))])
def test_plot_losses_draws_a_single_point_and_a_constant_loss(tmp_path, steps, values):
    path = str(tmp_path / "losses.png")
    plot_losses({"d_loss": (steps, values)}, path)
    assert count_in_box(read_rgb(path), series_colour(0)) > 20  # a dot at least, in the chart


def test_plot_losses_marks_an_epoch_start_at_its_step(tmp_path):
    path = str(tmp_path / "losses.png")
    steps = np.arange(0, 101)
    plot_losses({"d_loss": (steps, np.full(101, 1.0))}, path, epoch_starts=[0, 50])
    pixels = read_rgb(path)
    top, bottom, left, right = plot_box(pixels)
    # Step 50 lies halfway between the frame's sides, and so should the dashed grey line.
    epoch_line = np.all(pixels[top:bottom] == EPOCH_GREY, axis=2).sum(axis=0)
    assert epoch_line.max() > (bottom - top) / 3
    assert abs(np.argmax(epoch_line) - (left + right) / 2) <= 1
    # Its label stands above the frame, beside the line; epoch 0's at the left edge.
    above = np.any(pixels[:top] != 255, axis=2).any(axis=0)
    assert above[left:left + 10].any() and above[np.argmax(epoch_line):][:10].any()


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


def test_plot_losses_refuses_a_bad_smoothing_and_a_too_small_image(tmp_path):
    for smoothing in (1.0, -0.1):
        with pytest.raises(ValueError, match="smoothing"):
            plot_losses(noisy_losses(), str(tmp_path / "a.png"), smoothing=smoothing)
    with pytest.raises(ValueError, match="no room"):
        plot_losses(noisy_losses(), str(tmp_path / "b.png"), width=80, height=60)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("missing", [None, 1])
def test_progress_gif_frames_carry_their_epoch_labels_in_order(tmp_path, missing):
    colours = {0: (40, 80, 120), 1: (120, 40, 80), 2: (80, 120, 40)}
    for epoch, colour in colours.items():
        if epoch != missing:
            Image.new("RGB", (128, 128), colour).save(tmp_path / ("epoch_%02d.png" % epoch))
    write_progress_gif(str(tmp_path), 3)
    # Each frame is its own grid with its own label, as label_image draws it; a grid whose
    # epoch_NN.png is missing is left out, the others keeping their numbers.
    expected = [np.asarray(label_image(Image.new("RGB", (128, 128), colour), "epoch %d" % epoch))
                for epoch, colour in colours.items() if epoch != missing]
    with Image.open(tmp_path / "progress.gif") as gif:
        frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)]
    assert len(frames) == len(expected)
    for frame, want in zip(frames, expected):
        assert np.array_equal(frame, want)
    # The light label texts themselves differ: not "epoch 0" on every frame.
    texts = [frame.min(axis=2) > 200 for frame in frames]
    assert all(texts[0].any() and not np.array_equal(texts[0], text) for text in texts[1:])


def test_a_long_curve_is_drawn_as_its_envelope_and_a_short_one_as_it_is():
    steps = np.arange(1, 100001)
    values = np.sin(steps / 500.0) + np.random.default_rng(0).normal(0, 0.1, len(steps))
    drawn_steps, drawn = envelope(steps, values, columns=100)
    assert len(drawn) == 200 and np.all(np.diff(drawn_steps) > 0)
    for run in np.array_split(np.arange(len(steps)), 100):  # each column's extremes kept
        assert values[run].min() in drawn and values[run].max() in drawn
    few = envelope(steps[:150], values[:150], columns=100)
    assert np.array_equal(few[0], steps[:150]) and np.array_equal(few[1], values[:150])


def test_a_progress_gif_written_again_shows_a_grid_written_again(tmp_path):
    """Frames are kept between epochs only while their grid file is unchanged."""
    for epoch in range(2):
        Image.new("RGB", (64, 64), (200, 0, 0)).save(tmp_path / ("epoch_%02d.png" % epoch))
    write_progress_gif(str(tmp_path), 2)
    Image.new("RGB", (64, 64), (0, 0, 200)).save(tmp_path / "epoch_01.png")
    os.utime(tmp_path / "epoch_01.png", ns=(1, 1))  # another time, whatever the clock's grain
    write_progress_gif(str(tmp_path), 2)
    with Image.open(tmp_path / "progress.gif") as gif:
        corners = [np.asarray(frame.convert("RGB"))[-1, -1] for frame in ImageSequence.Iterator(gif)]
    assert [tuple(corner) for corner in corners] == [(200, 0, 0), (0, 0, 200)]
