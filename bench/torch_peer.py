"""The posts' DCGAN written in PyTorch: the peer that bench/train_throughput.py --peer torch and
bench/quality.py compare the TensorFlow port with (project addition beside Part 5; bench only).

`TorchDCGAN` has gantut_gan.py's model, starting weights and step (one D update and two G updates
on the same noise, Adam, sigmoid cross-entropy), takes and gives N x H x W x C arrays in [-1, 1]
as the TF model does, and keeps its maps channels-last. `bf16=True` runs the passes under
bfloat16 autocast (the peer of our `--bf16`); `compile=True` wraps both networks in torch.compile,
and `compile_error` says in one line why that could not be used, if so.
"""
import contextlib

import numpy as np
import torch
from torch import nn

from gantut_gan import layer_sizes, width_multiple

# 5x5 kernels, stride 2, and padding that halves (or, transposed, doubles) the side exactly, as
# TensorFlow's SAME padding does.
KERNEL, STRIDE, PADDING, OUTPUT_PADDING = 5, 2, 2, 1
INIT_STDDEV = 0.02


class Generator(nn.Module):
    """G: noise z -> image in [-1, 1], 4x4 up to image_size, as gantut_gan.DCGAN.generator."""

    def __init__(self, image_size=64, z_dim=100, gf_dim=64, c_dim=3):
        super().__init__()
        sizes = layer_sizes(image_size)
        channels = gf_dim * width_multiple(image_size, sizes[0])
        self.first_shape = (channels, sizes[0], sizes[0])
        self.project = nn.Linear(z_dim, channels * sizes[0] ** 2)
        layers = [nn.BatchNorm2d(channels), nn.ReLU()]
        for size in sizes[1:]:
            last = size == image_size
            out_channels = c_dim if last else gf_dim * width_multiple(image_size, size)
            layers.append(nn.ConvTranspose2d(channels, out_channels, KERNEL, STRIDE, PADDING,
                                             OUTPUT_PADDING))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(out_channels), nn.ReLU()]
            channels = out_channels
        self.upsample = nn.Sequential(*layers)

    def forward(self, z):
        return self.upsample(self.project(z).view(-1, *self.first_shape))


class Discriminator(nn.Module):
    """D: image -> logit that it is real, down to 4x4, as gantut_gan.DCGAN.discriminator."""

    def __init__(self, image_size=64, df_dim=64, c_dim=3):
        super().__init__()
        sizes = layer_sizes(image_size)
        layers, channels = [], c_dim
        for index, size in enumerate(reversed(sizes[:-1])):
            out_channels = df_dim * width_multiple(image_size, size)
            layers.append(nn.Conv2d(channels, out_channels, KERNEL, STRIDE, PADDING))
            if index > 0:  # no batch norm on D's input layer, as in the posts
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.LeakyReLU(0.2))
            channels = out_channels
        layers += [nn.Flatten(), nn.Linear(channels * sizes[0] ** 2, 1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, images):
        return self.layers(images)


def init_weights(module):
    """Start weights as gantut_datafuncs does: truncated normal for convolutions, normal for
    transposed convolutions and linear layers, zero biases (batch norm: scale 1, offset 0)."""
    if isinstance(module, nn.Conv2d):
        nn.init.trunc_normal_(module.weight, std=INIT_STDDEV, a=-2 * INIT_STDDEV,
                              b=2 * INIT_STDDEV)
    elif isinstance(module, (nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, std=INIT_STDDEV)
    else:
        return
    nn.init.zeros_(module.bias)


class TorchDCGAN(object):
    """The peer model and its optimisers; `train_step` and `generate` mirror gantut_gan.DCGAN."""

    def __init__(self, image_size=64, z_dim=100, gf_dim=64, df_dim=64, c_dim=3,
                 learning_rate=0.0002, beta1=0.5, seed=0, bf16=False, compile=False):
        torch.manual_seed(seed)
        self.generator = Generator(image_size, z_dim, gf_dim, c_dim)
        self.discriminator = Discriminator(image_size, df_dim, c_dim)
        for network in (self.generator, self.discriminator):
            network.apply(init_weights)
            # Channels-last: PyTorch's fastest layout on CPU, so the peer is at its best.
            network.to(memory_format=torch.channels_last)
        self.bf16 = bf16
        self.compiled = False
        self.compile_error = None
        if compile:
            self.compile_networks(z_dim, image_size, c_dim)
        self.d_optim = torch.optim.Adam(self.discriminator.parameters(), learning_rate,
                                        betas=(beta1, 0.999))
        self.g_optim = torch.optim.Adam(self.generator.parameters(), learning_rate,
                                        betas=(beta1, 0.999))
        self.loss = nn.BCEWithLogitsLoss()

    def compile_networks(self, z_dim, image_size, c_dim):
        """Wrap G and D in torch.compile and run them once (compiling is lazy, so a missing
        compiler shows only then); on failure keep them eager and set `compile_error`."""
        eager = self.generator, self.discriminator
        try:
            self.generator = torch.compile(self.generator)
            self.discriminator = torch.compile(self.discriminator)
            with torch.no_grad(), self.precision():
                self.discriminator(self.generator(torch.zeros(2, z_dim)))
            self.compiled = True
        except Exception as err:  # any backend failure: report it, train eagerly
            self.generator, self.discriminator = eager
            lines = str(err).strip().splitlines() or [type(err).__name__]
            self.compile_error = "%s: %s" % (type(err).__name__, lines[0][:200])

    def mode(self):
        """The peer's levers in one line, for the bench's start-up lines."""
        return "channels_last=on autocast_bf16=%s compile=%s" % (
            "on" if self.bf16 else "off",
            "on" if self.compiled else ("failed (%s)" % self.compile_error
                                        if self.compile_error else "off"))

    def precision(self):
        """bfloat16 autocast when asked, else nothing."""
        return torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 \
            else contextlib.nullcontext()

    def d_loss(self, images, fakes):
        """D's loss on a real batch (label 1) and on G's images `fakes` (label 0)."""
        with self.precision():
            real_logits, fake_logits = self.discriminator(images), self.discriminator(fakes)
        real_logits, fake_logits = real_logits.float(), fake_logits.float()
        return (self.loss(real_logits, torch.ones_like(real_logits))
                + self.loss(fake_logits, torch.zeros_like(fake_logits)))

    def g_loss(self, fakes):
        """G's loss: D's verdict on G's images `fakes` against the label 1."""
        with self.precision():
            logits = self.discriminator(fakes).float()
        return self.loss(logits, torch.ones_like(logits))

    def fakes(self, z):
        """G's images of z, through the autograd graph (G's update backpropagates into them)."""
        with self.precision():
            return self.generator(z)

    def train_step(self, batch_images, batch_z):
        """One D update, then two G updates on the same noise, the first through G's pass of D's
        update, as our one-run step; takes the trainer's batch (N x H x W x C, uint8) and
        noise (N x z_dim) and returns (d_loss, g_loss)."""
        self.generator.train()
        self.discriminator.train()
        images = self.images(batch_images)
        z = torch.from_numpy(np.asarray(batch_z, dtype=np.float32))
        fakes = self.fakes(z)
        d_loss = self.update(self.d_optim, self.d_loss(images, fakes.detach()))
        # D's weights need no gradients during G's updates, as TF's g_optim computes none.
        self.discriminator.requires_grad_(False)
        self.update(self.g_optim, self.g_loss(fakes))
        g_loss = self.update(self.g_optim, self.g_loss(self.fakes(z)))
        self.discriminator.requires_grad_(True)
        return d_loss, g_loss

    @staticmethod
    def update(optimizer, loss):
        """Backpropagate `loss`, step `optimizer`; return the loss as a float."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    @staticmethod
    def images(batch):
        """A uint8 N x H x W x C batch as N x C x H x W floats in [-1, 1], channels-last, as
        our model scales it (the N x H x W x C array seen as N x C x H x W is already
        channels-last)."""
        return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)

    def generate(self, z):
        """G's images of z, N x H x W x C in [-1, 1], with batch norm in inference mode."""
        self.generator.eval()
        with torch.no_grad(), self.precision():
            images = self.generator(torch.from_numpy(np.asarray(z, dtype=np.float32)))
        return images.float().permute(0, 2, 3, 1).numpy()
