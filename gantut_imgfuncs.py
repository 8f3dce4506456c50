"""Image import and export helpers (Part 3 of "Generative Adversarial Network (GAN) in TensorFlow").

Two chains, as in the post:

    import:  get_image -> imread -> transform -> center_crop
    export:  save_images -> inverse_transform -> imsave -> merge

The network sees pixels in [-1, 1] (it ends in `tanh`); files hold [0, 255]. The post read and
wrote through `scipy.misc`, which SciPy removed, so Pillow does the file work here.

Pillow also draws the loss chart of `plot_losses`, for runs without TensorBoard (project addition
beside Part 5).
"""
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from gantut_utils import atomic_path

# Pillow modes for the two channel counts the model supports.
MODE_FOR_CHANNELS = {1: "L", 3: "RGB"}


def open_image(path, c_dim=3):
    """Open an image file as a Pillow image with `c_dim` channels (Part 3, used by `imread`;
    align_faces.py of Part 2 reads its photos through it too).

    Grayscale, palette, RGBA, CMYK and 16-bit files all come back as RGB (or L for c_dim 1);
    transparency is flattened onto white, and an EXIF rotation is applied. Raises whatever Pillow
    raises for a broken file, including Image.DecompressionBombError past twice its pixel limit.
    """
    with Image.open(path) as img:
        img.load()  # the pixels, before the file closes
        # In place, and no conversion when the mode fits: a copy costs seconds on a 10000x10000
        # photo.
        ImageOps.exif_transpose(img, in_place=True)
    if img.mode.startswith("I"):
        # 16-bit grey levels: Pillow's convert clips them at 255 instead of scaling.
        grey = np.asarray(img).astype(np.float32) / 257
        img = Image.fromarray(np.clip(grey, 0, 255).round().astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        # Transparent pixels keep an arbitrary colour (often black); show them as viewers do.
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    mode = MODE_FOR_CHANNELS[c_dim]
    return img if img.mode == mode else img.convert(mode)


def imread(path, c_dim=3):
    """Read an image file as a float32 array of [0, 255] values, H x W x c_dim (Part 3).

    The post used `scipy.misc.imread`; any Pillow-readable file works here.
    """
    pixels = np.asarray(open_image(path, c_dim), dtype=np.float32)
    return pixels.reshape(pixels.shape[0], pixels.shape[1], c_dim)


def center_crop(x, crop_h, crop_w=None, resize_w=64):
    """Crop `crop_h` x `crop_w` about the centre of `x`, then resize to `resize_w` square (Part 3).

    Offsets are rounded, as in the post. Resizing is bilinear (the post's `scipy.misc.imresize`
    default), done by Pillow; the result keeps the dtype of `x`.
    """
    crop_w = crop_h if crop_w is None else crop_w
    h, w = x.shape[:2]
    top = int(round((h - crop_h) / 2.0))
    left = int(round((w - crop_w) / 2.0))
    crop = x[top:top + crop_h, left:left + crop_w]
    if crop.shape[:2] == (resize_w, resize_w):
        return crop
    channels = crop.shape[2]
    pixels = np.clip(crop, 0, 255).astype(np.uint8)
    as_image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels)
    resized = np.asarray(as_image.resize((resize_w, resize_w), Image.BILINEAR))
    return resized.reshape(resize_w, resize_w, channels).astype(x.dtype)


def transform(image, npx=64, is_crop=True):
    """Optionally centre-crop to an `npx` square, then scale [0, 255] to [-1, 1] (Part 3).

    With `is_crop` the largest centred square is cut out and resized to `npx` x `npx`, so photos
    of any shape become training images.
    """
    if is_crop:
        image = center_crop(image, min(image.shape[:2]), resize_w=npx)
    return np.asarray(image, dtype=np.float32) / 127.5 - 1.0


def get_image(image_path, image_size, is_crop=True, c_dim=3):
    """Read one image file and return it in [-1, 1], `image_size` square if cropped (Part 3)."""
    return transform(imread(image_path, c_dim), image_size, is_crop)


def inverse_transform(images):
    """Map generator output from [-1, 1] back to [0, 1] (Part 3)."""
    return (np.asarray(images) + 1.0) / 2.0


def merge(images, size):
    """Tile a batch N x H x W x C into one grid of `size[0]` rows by `size[1]` columns (Part 3).

    Images fill the grid row by row; cells past the end of the batch stay black.
    """
    images = np.asarray(images)
    n, h, w, c = images.shape
    rows, cols = size
    grid = np.zeros((h * rows, w * cols, c), dtype=images.dtype)
    for index, image in enumerate(images[:rows * cols]):
        row, col = divmod(index, cols)
        grid[row * h:(row + 1) * h, col * w:(col + 1) * w] = image
    return grid


def to_uint8(images):
    """Scale [0, 1] floats to [0, 255] bytes, rounding and clipping (Part 3, used by `imsave`)."""
    return np.clip(np.rint(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)


def imsave(images, size, path):
    """Merge a batch of [0, 1] images into a grid and write it as an 8-bit image file (Part 3).

    The file appears whole or not at all (written to a temp name, then renamed).
    """
    grid = to_uint8(merge(images, size))
    if grid.shape[2] == 1:
        grid = grid[:, :, 0]
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp)
    return path


def grid_shape(n_images):
    """Rows and columns of the most square grid that holds `n_images` (Part 3 helper)."""
    cols = int(np.ceil(np.sqrt(n_images)))
    rows = int(np.ceil(n_images / cols))
    return rows, cols


def save_images(images, size, image_path):
    """Write a batch of generator outputs in [-1, 1] as one grid image (Part 3)."""
    return imsave(inverse_transform(images), size, image_path)


def label_image(img, text):
    """Draw `text` in a dark box at the top-left of a Pillow image, in place (Part 5 helper)."""
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(10, img.height // 24))
    _, _, right, bottom = draw.textbbox((4, 2), text, font=font)
    draw.rectangle((0, 0, right + 4, bottom + 4), fill=(0, 0, 0))
    draw.text((4, 2), text, fill=(255, 255, 255), font=font)
    return img


def save_gif(paths, labels, gif_path, frame_ms=500):
    """Write the image files `paths` as an animated GIF, each frame labelled (Part 5).

    Part 5 shows the samples at the end of each epoch as such a GIF. The last frame is held
    longer, so the final result can be looked at.
    """
    frames = []
    for path, label in zip(paths, labels):
        with Image.open(path) as img:
            frames.append(label_image(img.convert("RGB"), label))
    durations = [frame_ms] * (len(frames) - 1) + [frame_ms * 4]
    with atomic_path(gif_path) as tmp:
        frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return gif_path


# Loss chart colours, one per series in the order of the dict, then round again: matplotlib's
# default cycle, the colours loss curves usually come in.
SERIES_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                  (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
AXIS_COLOUR = (60, 60, 60)
GRID_COLOUR = (232, 232, 232)
EPOCH_COLOUR = (150, 150, 150)


def finite_points(steps, values):
    """One loss series as float arrays, its non-finite points dropped, in step order (project
    addition beside Part 5, used by `plot_losses`).

    Sorted because a log appended to after a resume may step back.
    """
    steps = np.asarray(steps, dtype=np.float64).ravel()
    values = np.asarray(values, dtype=np.float64).ravel()
    keep = np.isfinite(steps) & np.isfinite(values)
    order = np.argsort(steps[keep], kind="stable")
    return steps[keep][order], values[keep][order]


def smooth(values, smoothing):
    """TensorBoard's smoothing of a scalar curve (project addition beside Part 5).

    An exponential moving average with weight `smoothing` on the past, divided by the weight it
    has gathered so far, so that the curve does not start pulled towards 0. TensorBoard smooths
    the 1000 points of a curve it keeps; past that many, the weight grows so that the average
    spans as much of the curve as it would there.
    """
    weight = smoothing ** min(1.0, 1000 / len(values))
    smoothed = np.empty(len(values))
    average = 0.0
    for i, value in enumerate(values):
        average = average * weight + (1 - weight) * value
        smoothed[i] = average / (1 - weight ** (i + 1))
    return smoothed


def loss_range(smoothed):
    """The (low, high) of a loss chart's y axis for the smoothed curves `smoothed` (project
    addition beside Part 5).

    The 1st to 99th percentile of all values with a 5 % margin: GAN losses spike in the first
    steps, and scaling to the spike would flatten the rest. A constant loss gets a band of 10 %
    of its size (or of 1 about 0), never an empty range.
    """
    low, high = np.percentile(np.concatenate(smoothed), [1, 99])
    span = high - low
    if span <= 1e-9 * max(abs(low), abs(high)):
        centre = (low + high) / 2
        half = abs(centre) * 0.1 or 0.5
        return centre - half, centre + half
    return low - 0.05 * span, high + 0.05 * span


def nice_ticks(low, high, count, integer=False):
    """About `count` round values (1, 2 or 5 times a power of ten apart) within [low, high], and
    their spacing (project addition beside Part 5); `integer` keeps the spacing at 1 or more."""
    raw = (high - low) / count
    power = 10.0 ** np.floor(np.log10(raw))
    # The round spacing nearest the raw one, by ratio.
    spacing = min((m * power for m in (1, 2, 5, 10)), key=lambda step: abs(np.log(step / raw)))
    if integer:
        spacing = max(spacing, 1.0)
    # Whole multiples of the spacing, not a running sum, which would gather rounding errors.
    multiples = np.arange(np.ceil(low / spacing), np.floor(high / spacing) + 1)
    return multiples * spacing + 0.0, spacing  # + 0.0 turns -0.0 into 0.0


def tick_label(value, spacing):
    """`value` with the decimals ticks `spacing` apart need: "0.25", "1200", "3e-05" (project
    addition beside Part 5)."""
    decimals = max(0, -int(np.floor(np.log10(spacing))))
    if decimals > 4 or abs(value) >= 1e6:
        return "%.3g" % value
    return "%.*f" % (decimals, value)


def legend_rows(names, font, max_width):
    """Pack the legend entries (swatch, name) into rows that fit `max_width`; return each row as
    (its entries as (name, x offset), its width) (project addition beside Part 5)."""
    size = font.size
    rows, entries, x = [], [], 0
    for name in names:
        width = int(2 * size + size // 3 + font.getlength(name))
        if entries and x + width > max_width:
            rows.append((entries, x - size))
            entries, x = [], 0
        entries.append((name, x))
        x += width + size
    rows.append((entries, x - size))
    return rows


def draw_legend(draw, font, rows, colours, top, width):
    """Draw the legend rows of `legend_rows`, centred, from `top` down (project addition beside
    Part 5)."""
    size = font.size
    line_height = sum(font.getmetrics())
    for row, (entries, row_width) in enumerate(rows):
        y = top + row * (line_height + size // 3) + line_height // 2
        left = (width - row_width) // 2
        for name, x in entries:
            draw.line((left + x, y, left + x + 2 * size, y), fill=colours[name], width=3)
            draw.text((left + x + 2 * size + size // 3, y), name, fill=AXIS_COLOUR, font=font,
                      anchor="lm")


def draw_epochs(chart, draw, font, epoch_starts, to_x, box, x_range):
    """Dashed lines where epochs begin, on the `chart` layer, and their numbers above the plot
    where there is room (project addition beside Part 5)."""
    left, top, right, bottom = box
    chart_draw = ImageDraw.Draw(chart)
    dash = max(3, font.size // 3)
    label_end = -np.inf
    for epoch, start in enumerate(epoch_starts):
        next_start = epoch_starts[epoch + 1] if epoch + 1 < len(epoch_starts) else np.inf
        if start > x_range[1] or next_start <= x_range[0]:
            continue  # the epoch lies outside the steps shown
        x = to_x(start)
        if start > x_range[0]:
            for y in range(top, bottom, 2 * dash):
                chart_draw.line((x, y, x, min(y + dash, bottom)), fill=EPOCH_COLOUR)
        text = "epoch %d" % epoch
        text_x = max(x, left) + dash
        if text_x >= label_end + font.size and text_x + font.getlength(text) <= right:
            draw.text((text_x, top - 2), text, fill=EPOCH_COLOUR, font=font, anchor="ld")
            label_end = text_x + font.getlength(text)


def plot_losses(series, path, epoch_starts=(), title=None, width=800, height=400, smoothing=0.9):
    """Draw loss curves against step as an image file at `path`, a PNG for ".png", for runs
    without TensorBoard (project addition beside Part 5).

    `series` maps each name (d_loss, g_loss, ...) to (steps, values), each series with its own
    steps. Each is drawn faint as logged and bold smoothed as TensorBoard smooths (`smoothing`
    is the weight of the past, in [0, 1); 0 draws the values as they are), in its own colour,
    named in a legend under the chart. The y axis spans the 1st to 99th percentile of the smoothed
    values plus a margin, so the spikes of the first steps do not flatten the rest; what lies
    beyond is cut off. `epoch_starts` are the steps at which epochs 0, 1, ... begin, drawn as
    dashed lines, numbered where there is room. Non-finite points are dropped and series left
    empty skipped; with none left the image says "no losses yet". The file appears whole or not
    at all, its folder created if need be; returns `path`.
    """
    if not 0 <= smoothing < 1:
        raise ValueError("smoothing is the weight of the past, in [0, 1), not %r" % smoothing)
    colours = {name: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, name in enumerate(series)}
    points = {name: finite_points(*series[name]) for name in series}
    points = {name: (steps, values) for name, (steps, values) in points.items() if len(steps)}
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(10, min(width, height) // 30))
    top = font.size // 2
    if title:
        title_font = ImageFont.load_default(size=font.size + 3)
        draw.text((width // 2, top), title, fill=AXIS_COLOUR, font=title_font, anchor="mt")
        top += sum(title_font.getmetrics()) + font.size // 2
    if points:
        draw_chart(img, draw, font, points, colours, epoch_starts, smoothing, top)
    else:
        draw.text((width // 2, (top + height) // 2), "no losses yet", fill=AXIS_COLOUR,
                  font=font, anchor="mm")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        img.save(tmp)
    return path


def draw_chart(img, draw, font, points, colours, epoch_starts, smoothing, top):
    """The axes, curves, epoch lines and legend of `plot_losses`, below `top` (project addition
    beside Part 5)."""
    width, height = img.size
    size = font.size
    line_height = sum(font.getmetrics())
    smoothed = {name: smooth(values, smoothing) for name, (_, values) in points.items()}
    rows = legend_rows(points, font, width - size)
    if len(epoch_starts):
        top += line_height  # the epoch numbers' row
    bottom = height - size // 2 - len(rows) * (line_height + size // 3) - line_height - size
    y_range = loss_range(list(smoothed.values()))
    y_ticks, y_spacing = nice_ticks(*y_range, count=max(2, (bottom - top) // (3 * line_height)))
    y_labels = [tick_label(value, y_spacing) for value in y_ticks]
    x_range = step_range(points)
    # Room on the right for half the widest step label, centred under its tick.
    right = width - size // 2 - int(font.getlength("%d" % x_range[1]) / 2)
    left = size // 2 + int(max(font.getlength(label) for label in y_labels)) + size // 2
    if right - left < 2 * size or bottom - top < 2 * size:
        raise ValueError("a %dx%d image leaves no room for the loss chart" % img.size)
    box = (left, top, right, bottom)

    def to_x(steps):
        return left + (steps - x_range[0]) / (x_range[1] - x_range[0]) * (right - left)

    def to_y(values):
        y = bottom - (values - y_range[0]) / (y_range[1] - y_range[0]) * (bottom - top)
        # Far-off points (the spikes cut off) within what Pillow's integer coordinates hold.
        return np.clip(y, top - 10 * height, bottom + 10 * height)

    # The curves go on a layer cropped to the plot box, which cuts off what lies beyond it.
    chart = Image.new("RGB", img.size, "white")
    chart_draw = ImageDraw.Draw(chart)
    for y in to_y(y_ticks):
        chart_draw.line((left, y, right, y), fill=GRID_COLOUR)
    draw_epochs(chart, draw, font, epoch_starts, to_x, box, x_range)
    for name, (steps, values) in points.items():
        if smoothing:
            faint = tuple(int(255 - 0.3 * (255 - c)) for c in colours[name])
            draw_curve(chart_draw, to_x(steps), to_y(values), faint, 1)
    for name, (steps, _) in points.items():
        draw_curve(chart_draw, to_x(steps), to_y(smoothed[name]), colours[name], 2)
    img.paste(chart.crop(box), box[:2])
    draw_axes(draw, font, box, to_x, x_range, to_y(y_ticks), y_labels)
    draw_legend(draw, font, rows, colours, bottom + size // 2 + line_height + size // 2, width)


def step_range(points):
    """The (first, last) step of a loss chart's x axis, never empty (project addition beside
    Part 5)."""
    all_steps = np.concatenate([steps for steps, _ in points.values()])
    first, last = all_steps.min(), all_steps.max()
    if first == last:
        return first - 1, last + 1  # one step: put it in the middle
    return first, last


def draw_axes(draw, font, box, to_x, x_range, y_positions, y_labels):
    """The frame of the plot `box`, round steps under it and the y labels at `y_positions`
    beside it (project addition beside Part 5)."""
    left, _, right, bottom = box
    size = font.size
    draw.rectangle(box, outline=AXIS_COLOUR)
    for y, label in zip(y_positions, y_labels):
        draw.line((left - size // 3, y, left, y), fill=AXIS_COLOUR)
        draw.text((left - size // 2, y), label, fill=AXIS_COLOUR, font=font, anchor="rm")
    x_ticks, x_spacing = nice_ticks(*x_range, count=max(2, (right - left) // (9 * size)),
                                    integer=True)
    for x, step in zip(to_x(x_ticks), x_ticks):
        draw.line((x, bottom, x, bottom + size // 3), fill=AXIS_COLOUR)
        draw.text((x, bottom + size // 2), tick_label(step, x_spacing), fill=AXIS_COLOUR,
                  font=font, anchor="mt")


def draw_curve(draw, xs, ys, colour, line_width):
    """One curve through the points (xs, ys), a dot if it has only one (project addition beside
    Part 5)."""
    if len(xs) == 1:
        draw.ellipse((xs[0] - 3, ys[0] - 3, xs[0] + 3, ys[0] + 3), fill=colour)
    else:
        draw.line(list(zip(xs.tolist(), ys.tolist())), fill=colour, width=line_width,
                  joint="curve")
