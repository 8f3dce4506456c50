"""Image import and export helpers: Part 3 of "Generative Adversarial Network (GAN) in TensorFlow".

Two chains, as in the post, between files of [0, 255] and the network's [-1, 1]:

    import:  get_image calls imread, then transform, which calls center_crop
    export:  save_images calls inverse_transform, then imsave, which calls merge

The post's names come first, in its order; our additions follow in one block.
"""
import numpy as np
from PIL import Image, ImageOps

from extras.utils import atomic_path


def imread(path, c_dim=3):
    """Read any image file `open_image` reads as a float32 array of [0, 255] values,
    H x W x c_dim (Part 3)."""
    pixels = np.asarray(open_image(path, c_dim), dtype=np.float32)
    return pixels.reshape(pixels.shape[0], pixels.shape[1], c_dim)


def transform(image, npx=64, is_crop=True):
    """Scale [0, 255] to [-1, 1], with `is_crop` after cutting out the largest centred square
    and resizing it to `npx` x `npx` (Part 3)."""
    if is_crop:
        image = center_crop(image, min(image.shape[:2]), resize_w=npx)
    # Ours: one new array, scaled in place (training transforms every batch: a third of the
    # time of x / 127.5 - 1, the same values).
    pixels = np.array(image, dtype=np.float32)
    pixels /= 127.5
    pixels -= 1.0
    return pixels


def center_crop(x, crop_h, crop_w=None, resize_w=64):
    """Crop `crop_h` x `crop_w` about the centre of `x` (offsets rounded, as in the post), then
    resize bilinearly to `resize_w` square, keeping the dtype of `x` (Part 3)."""
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


def get_image(image_path, image_size, is_crop=True, c_dim=3):
    """Read one image file and return it in [-1, 1], `image_size` square if cropped (Part 3)."""
    return transform(imread(image_path, c_dim), image_size, is_crop)


def inverse_transform(images):
    """Map generator output from [-1, 1] back to [0, 1] (Part 3)."""
    return (np.asarray(images) + 1.0) / 2.0


def merge(images, size):
    """Tile a batch N x H x W x C row by row into one grid of `size[0]` rows by `size[1]`
    columns, cells past the end of the batch black (Part 3)."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    rows, cols = size
    grid = np.zeros((h * rows, w * cols, c), dtype=images.dtype)
    for index, image in enumerate(images[:rows * cols]):
        row, col = divmod(index, cols)
        grid[row * h:(row + 1) * h, col * w:(col + 1) * w] = image
    return grid


def imsave(images, size, path):
    """Merge a batch of [0, 1] images into a grid and write it as an 8-bit image file, whole or
    not at all (Part 3)."""
    grid = to_uint8(merge(images, size))
    if grid.shape[2] == 1:
        grid = grid[:, :, 0]
    with atomic_path(path) as tmp:
        # Ours: PNG's fastest compression (training writes a grid every 100 steps): a tenth
        # larger, written in half the time or less.
        Image.fromarray(grid).save(tmp, compress_level=1)
    return path


def save_images(images, size, image_path):
    """Write a batch of generator outputs in [-1, 1] as one grid image (Part 3)."""
    return imsave(inverse_transform(images), size, image_path)


# --- Our additions (not in the post) ---

# Pillow modes for the two channel counts the model supports.
MODE_FOR_CHANNELS = {1: "L", 3: "RGB"}


def open_image(path, c_dim=3):
    """Open an image file of any mode as an RGB (c_dim 3) or L (c_dim 1) Pillow image,
    transparency on white and EXIF rotation applied; a broken file raises what Pillow raises
    (addition: the reading behind `imread`)."""
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


def to_uint8(images):
    """Scale [0, 1] floats to [0, 255] bytes, rounding and clipping (addition: the byte step of
    `imsave`, shared with the metrics and pix2pix)."""
    return np.clip(np.rint(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)


def grid_shape(n_images):
    """Rows and columns of the most square grid that holds `n_images` (addition: the `size` the
    post's 8x8 sample grids get for any batch size)."""
    cols = int(np.ceil(np.sqrt(n_images)))
    rows = int(np.ceil(n_images / cols))
    return rows, cols
