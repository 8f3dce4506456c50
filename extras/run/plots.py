"""Plots and the GIF (additions beside Part 5 of "Generative Adversarial Network (GAN) in
TensorFlow"): `plot_losses`, the loss chart of a run, drawn on matplotlib's Agg canvas (files
only; no pyplot, so the caller's own backend is left alone); `write_progress_gif`, the
end-of-epoch sample grids animated, each frame labelled with its epoch.
"""
import itertools
import os
import warnings

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from extras.utils import atomic_path

DPI = 100  # figure inches times this are the pixels asked for
EPOCH_COLOUR = "#969696"
MIN_PLOT_PX = 28  # the plot box's least side: two lines of the 10 pt text
# A curve of more points is drawn as its envelope over this many columns (wider than a chart).
ENVELOPE_COLUMNS = 2000


def plot_losses(series, path, epoch_starts=(), title=None, width=800, height=400, smoothing=0.9):
    """Draw `series` ({name: (steps, values)}) faint as logged and bold smoothed (smooth), with
    `epoch_starts` marked, as a `width` x `height` image written whole at `path` (a PNG for
    ".png"); return `path` (addition: the loss chart of a run without TensorBoard)."""
    # Imported here, not with the module: every start of a trainer would pay for loading it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not 0 <= smoothing < 1:
        raise ValueError("smoothing is the weight of the past, in [0, 1), not %r" % smoothing)
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if title:
        fig.suptitle(title)
    points = finite_points(series)
    if points:
        draw_curves(fig, ax, points, smoothing)
        draw_epochs(ax, epoch_starts)
        if not room_to_plot(fig, ax):
            raise ValueError("a %dx%d image leaves no room for the loss chart" % (width, height))
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no losses yet", ha="center", va="center", transform=ax.transAxes)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp)  # the temp name keeps the extension, which picks the format
    return path


def finite_points(series):
    """Each series of `plot_losses` as {name: (colour index, steps, values)}, float arrays in
    step order without their non-finite points; series left empty are left out (addition)."""
    # Sorted: a log appended to after a resume may step back. The colour index is the place in
    # `series`, so the colours do not depend on which series have points yet.
    points = {}
    for index, (name, (steps, values)) in enumerate(series.items()):
        steps = np.asarray(steps, dtype=np.float64).ravel()
        values = np.asarray(values, dtype=np.float64).ravel()
        keep = np.isfinite(steps) & np.isfinite(values)
        order = np.argsort(steps[keep], kind="stable")
        if len(order):
            points[name] = (index, steps[keep][order], values[keep][order])
    return points


def draw_curves(fig, ax, points, smoothing):
    """The faint raw and bold smoothed curve of each series, the axes' ranges and the legend of
    `plot_losses` (addition)."""
    from matplotlib.ticker import MaxNLocator

    smoothed = {}
    for name, (index, steps, values) in points.items():
        colour = "C%d" % (index % 10)
        smoothed[name] = smooth(values, smoothing)
        if smoothing:
            ax.plot(*envelope(steps, values), color=colour, alpha=0.3, linewidth=1)
        # A marker as well, so that a single point shows.
        ax.plot(*envelope(steps, smoothed[name]), color=colour, linewidth=2, label=name,
                marker="o" if len(steps) == 1 else None)
    all_steps = np.concatenate([steps for _, steps, _ in points.values()])
    first, last = all_steps.min(), all_steps.max()
    ax.set_xlim((first - 1, last + 1) if first == last else (first, last))
    ax.set_ylim(loss_range(list(smoothed.values())))
    ax.xaxis.set_major_locator(MaxNLocator("auto", integer=True))
    ax.set_xlabel("step")
    ax.grid(True, color="#e8e8e8")
    fig.legend(loc="outside lower center", ncols=len(points), frameon=False)


def smooth(values, smoothing):
    """TensorBoard's smoothing of a scalar curve: an exponential moving average with weight
    `smoothing` on the past, debiased; past 1000 points the weight grows to span as much of the
    curve as TensorBoard's 1000 kept points would (addition)."""
    weight = smoothing ** min(1.0, 1000 / len(values))
    # average[i] = weight * average[i - 1] + (1 - weight) * values[i], from average[-1] = 0. In
    # Python (20 ms for 62,040 points): scipy.signal's lfilter gives the same values, but loading
    # scipy.signal cost every trainer's start 1.4-1.6 s.
    averages = itertools.accumulate(np.asarray(values, dtype=np.float64).tolist(),
                                    lambda past, value: weight * past + (1 - weight) * value,
                                    initial=0.0)
    average = np.fromiter(averages, np.float64, len(values) + 1)[1:]
    return average / (1 - weight ** np.arange(1, len(values) + 1))


def envelope(steps, values, columns=ENVELOPE_COLUMNS):
    """A curve of many points as its lowest and highest value in each of `columns` equal runs
    of points, in step order: what a chart of that width shows of it, drawn in a fraction of
    the time (addition)."""
    if len(steps) <= 2 * columns:
        return steps, values
    runs = np.array_split(np.arange(len(steps)), columns)
    picks = [run[[values[run].argmin(), values[run].argmax()]] for run in runs]
    picks = np.sort(np.concatenate(picks))
    return steps[picks], values[picks]


def loss_range(smoothed):
    """The (low, high) of the y axis for the smoothed curves `smoothed`: the 1st to 99th
    percentile with a 5 % margin, so the first steps' spikes do not flatten the rest; a constant
    loss gets a band of 10 % of its size, or of 1 about 0 (addition)."""
    low, high = np.percentile(np.concatenate(smoothed), [1, 99])
    span = high - low
    if span <= 1e-9 * max(abs(low), abs(high)):
        centre = (low + high) / 2
        half = abs(centre) * 0.1 or 0.5
        return centre - half, centre + half
    return low - 0.05 * span, high + 0.05 * span


def draw_epochs(ax, epoch_starts):
    """A dashed line where each epoch shown begins, labelled above the chart (every k-th, so the
    labels never overlap; one begun before the first step shown at the left edge) (addition)."""
    first, last = ax.get_xlim()
    ends = list(epoch_starts[1:]) + [np.inf]
    shown = [(epoch, start) for epoch, (start, end) in enumerate(zip(epoch_starts, ends))
             if start <= last and end > first]
    label_px = 60  # about the width of "epoch 10" in 10 pt text
    every = max(1, int(np.ceil(len(shown) * label_px / ax.get_window_extent().width)))
    for n, (epoch, start) in enumerate(shown):
        if start > first:
            ax.axvline(start, color=EPOCH_COLOUR, linestyle="--", linewidth=1)
        if n % every == 0:
            ax.annotate("epoch %d" % epoch, (max(start, first), 1), xytext=(3, 2),
                        xycoords=ax.get_xaxis_transform(), textcoords="offset points",
                        color=EPOCH_COLOUR, fontsize="small", va="bottom")


def room_to_plot(fig, ax):
    """Whether the laid-out figure leaves the plot box of `ax` two lines of text each way
    (addition)."""
    with warnings.catch_warnings():
        # On a too-small figure the layout gives up with only a warning, keeping default places.
        warnings.filterwarnings("error", "constrained_layout not applied")
        try:
            fig.draw_without_rendering()
        except UserWarning:
            return False
    box = ax.get_window_extent()
    return min(box.width, box.height) >= MIN_PLOT_PX


def label_image(img, text):
    """Draw `text` in a dark box at the top-left of a Pillow image, in place (addition: the
    epoch label of a GIF frame)."""
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(10, img.height // 24))
    _, _, right, bottom = draw.textbbox((4, 2), text, font=font)
    draw.rectangle((0, 0, right + 4, bottom + 4), fill=(0, 0, 0))
    draw.text((4, 2), text, fill=(255, 255, 255), font=font)
    return img


def save_gif(paths, labels, gif_path, frame_ms=500):
    """Write the image files `paths` as an animated GIF, each frame labelled and the last held
    longer (addition: Part 5 shows the samples at the end of each epoch as such a GIF)."""
    frames = [gif_frame(path, label) for path, label in zip(paths, labels)]
    durations = [frame_ms] * (len(frames) - 1) + [frame_ms * 4]
    with atomic_path(gif_path) as tmp:
        frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return gif_path


# The palette frames made for GIFs, by (file, label): (the file's mtime and size, the frame).
_gif_frames = {}


def gif_frame(path, label):
    """The image file at `path` labelled `label`, as a GIF's palette frame; kept while the file
    is unchanged, so that each epoch's GIF reduces the colours of its new grid alone (addition:
    that reduction is most of a GIF's time)."""
    stat = os.stat(path)
    version = (stat.st_mtime_ns, stat.st_size)
    kept = _gif_frames.get((path, label))
    if kept is None or kept[0] != version:
        with Image.open(path) as img:
            kept = (version, label_image(img.convert("RGB"), label).quantize())
        _gif_frames[(path, label)] = kept
    return kept[1]


def write_progress_gif(sample_dir, epochs):
    """Animate the end-of-epoch grids epoch_00.png ... into sample_dir/progress.gif (addition:
    Part 5's GIF)."""
    paths = [os.path.join(sample_dir, "epoch_%02d.png" % e) for e in range(epochs)]
    present = [(p, "epoch %d" % e) for e, p in enumerate(paths) if os.path.exists(p)]
    save_gif([p for p, _ in present], [label for _, label in present],
             os.path.join(sample_dir, "progress.gif"))
