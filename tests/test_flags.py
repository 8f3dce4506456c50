"""Every flag of both trainers says what it does and what its default is, and the posts' nine
come first in gantut_trainer.py, in the post's order (Part 5)."""
import functools
import re

import pytest

from conftest import python_json

# Part 5's flags, in the post's order, with the post's defaults.
POST_FLAGS = [("epoch", 20), ("learning_rate", 0.0002), ("beta1", 0.5),
              ("train_size", float("inf")), ("batch_size", 64), ("image_size", 64),
              ("dataset", "lfw-aligned-64"), ("checkpoint_dir", "checkpoint"),
              ("sample_dir", "samples")]


@functools.lru_cache(maxsize=None)
def module_flags(module):
    """[(name, help, default)] of the flags `module` defines, in definition order (each trainer
    is imported in its own process, once: both define --dataset)."""
    script = ("import json, %s; from absl import flags; print(json.dumps([(f.name, f.help, "
              "f.default if f.default != float('inf') else 'inf') for f in "
              "flags.FLAGS.get_flags_for_module(%r)]))" % (module, module))
    return python_json(script)


def default_text(default):
    """How a default can be written in a help text's brackets."""
    if isinstance(default, float):
        return {"%g" % default, repr(default)}
    return {str(default)}


@pytest.mark.parametrize("module", ["gantut_trainer", "pix2pix_trainer"])
def test_every_flag_has_help_ending_in_its_default(module):
    defined = module_flags(module)
    assert len(defined) > 20
    for name, help_text, default in defined:
        bracket = re.search(r"\[([^\[\]]*)\]$", help_text)
        assert bracket, "--%s: help %r does not end in [default]" % (name, help_text)
        # A flag without a fixed default (None, or a machine-dependent one) says what happens.
        if default is not None and name not in ("threads", "bf16"):
            assert any(text in bracket.group(1) for text in default_text(default)), \
                "--%s: [%s] does not give the default %r" % (name, bracket.group(1), default)


def test_the_posts_flags_come_first_in_the_posts_order_with_its_defaults():
    defined = module_flags("gantut_trainer")
    first = [(name, float("inf") if default == "inf" else default)
             for name, _, default in defined[:len(POST_FLAGS)]]
    assert first == POST_FLAGS
