"""Every flag of both trainers says what it does and what its default is, and the posts' nine
come first in gantut_trainer.py, in the post's order (Part 5); each bound is refused by name, and
what depends on the machine is found out at start, not on import."""
import functools
import re

import pytest
from absl import flags

from conftest import python_json
from extras.run.flags import define, machine_values

TRAINERS = ["gantut_trainer", "pix2pix_trainer"]

# Part 5's flags, in the post's order, with the post's defaults.
POST_FLAGS = [("epoch", 20), ("learning_rate", 0.0002), ("beta1", 0.5),
              ("train_size", float("inf")), ("batch_size", 64), ("image_size", 64),
              ("dataset", "lfw-aligned-64"), ("checkpoint_dir", "checkpoint"),
              ("sample_dir", "samples")]


@functools.lru_cache(maxsize=None)
def imported(module):
    """{"flags": [(name, help, default)] of the flags `module` defines, in definition order,
    "probed": the device probes its import called} (each trainer is imported in its own
    process, once: both define --dataset)."""
    # gpu_visible is patched where it is defined, before extras.machine.cpu imports it.
    script = ("import json, extras.machine.device as device\nprobed = []\n"
              "def probe(name):\n    return lambda: probed.append(name) or set()\n"
              "device.gpu_visible = probe('gpu_visible')\n"
              "import extras.machine.cpu as cpu\ncpu.cpu_flags = probe('cpu_flags')\n"
              "import %s\nfrom absl import flags\n"
              "print(json.dumps({'probed': probed, 'flags': [(f.name, f.help, f.default if "
              "f.default != float('inf') else 'inf') for f in "
              "flags.FLAGS.get_flags_for_module(%r)]}))" % (module, module))
    return python_json(script)


def default_text(default):
    """How a default can be written in a help text's brackets."""
    if isinstance(default, float):
        return {"%g" % default, repr(default)}
    return {str(default)}


@pytest.mark.parametrize("module", TRAINERS)
def test_every_flag_has_one_line_help_ending_in_its_default(module):
    defined = imported(module)["flags"]
    assert len(defined) > 20
    for name, help_text, default in defined:
        if help_text.startswith("Alias for --"):  # absl's own line for an old name
            continue
        bracket = re.search(r"\[([^\[\]]*)\]$", help_text)
        assert bracket, "--%s: help %r does not end in [default]" % (name, help_text)
        # A line of --help, not a paragraph: the explanations are in the module docstrings.
        assert "\n" not in help_text and len(help_text) <= 130, "--%s: help %r" % (name, help_text)
        # A flag without a fixed default (None: no seed, or this machine's choice) says what
        # happens instead.
        if default is not None:
            assert any(text in bracket.group(1) for text in default_text(default)), \
                "--%s: [%s] does not give the default %r" % (name, bracket.group(1), default)


def test_the_posts_flags_come_first_in_the_posts_order_with_its_defaults():
    defined = imported("gantut_trainer")["flags"]
    first = [(name, float("inf") if default == "inf" else default)
             for name, _, default in defined[:len(POST_FLAGS)]]
    assert first == POST_FLAGS


@pytest.mark.parametrize("module", TRAINERS)
def test_importing_a_trainer_probes_no_device_and_leaves_the_machine_flags_unset(module):
    result = imported(module)
    assert result["probed"] == []
    defaults = {name: default for name, _, default in result["flags"]}
    machine = ["bf16", "fused_bn"] if module == "gantut_trainer" else ["bf16"]
    assert [defaults[name] for name in machine] == [None] * len(machine)


def test_define_refuses_each_bound_by_name():
    values = flags.FlagValues()
    define(flags.DEFINE_integer, "epoch", 20, "Epochs [20]", at_least=1, flag_values=values)
    define(flags.DEFINE_float, "rate", 0.1, "Rate [0.1]", above=0, flag_values=values)
    define(flags.DEFINE_float, "share", 0.5, "Share [0.5]", fraction=True, flag_values=values)
    define(flags.DEFINE_integer, "c_dim", 3, "Channels [3]", check=lambda value: value in (1, 3),
           message="must be 1 or 3", flag_values=values)
    values(["prog", "--epoch=1", "--rate=1e-9", "--share=0", "--c_dim=1"])
    assert (values.epoch, values.share) == (1, 0)
    for arg, refusal in [("--epoch=0", "--epoch must be at least 1"),
                         ("--rate=0.0", "--rate must be above 0"),
                         ("--share=1.0", "--share must be in [0, 1)"),
                         ("--share=-0.1", "--share must be in [0, 1)"),
                         ("--c_dim=2", "--c_dim must be 1 or 3")]:
        values.unparse_flags()
        with pytest.raises(flags.IllegalFlagValueError) as refused:
            values(["prog", arg])
        assert str(refused.value) == "flag %s: %s" % (arg, refusal)


def test_a_machine_flag_takes_the_machines_choice_only_where_left_unset():
    values = flags.FlagValues()
    flags.DEFINE_boolean("bf16", None, "bfloat16 [this machine's choice]", flag_values=values)
    flags.DEFINE_boolean("fused_bn", None, "fused [this machine's choice]", flag_values=values)
    values(["prog", "--nofused_bn"])
    assert machine_values(values, bf16=True, fused_bn=True) == {"bf16": True, "fused_bn": False}
    assert machine_values(values, bf16=False, fused_bn=True) == {"bf16": False, "fused_bn": False}
    assert (values.bf16, values.fused_bn) == (None, False)  # read, never written
