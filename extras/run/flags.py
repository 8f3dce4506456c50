"""The trainers' command-line flags (ours): `define`, one absl flag and the values it refuses;
`define_shared`, the flags gantut_trainer.py and pix2pix_trainer.py both have besides the post's
nine; `machine_values`, the values of flags left at None ("this machine's choice").

A refused value stops the trainer at start with one line naming the flag (`parse_flags`):
`error: flag --epoch=0: --epoch must be at least 1`.
"""
import sys

from absl import flags

import extras.machine.tfenv
from extras.machine.device import DEVICES
from extras.utils import ALL_CORES

# What this module defines belongs to the trainer calling in: its --help lists it.
flags.disclaim_key_flags()


def define(definer, name, default, help, at_least=None, above=None, fraction=False, check=None,
           message=None, flag_values=flags.FLAGS, **args):
    """Define flag `name` with `definer` (an absl DEFINE_* function, given `args` too) and refuse
    a value below `at_least`, not above `above`, outside [0, 1) (`fraction`), or failing `check`
    (absl's checker: False refuses with `message`; it may raise flags.ValidationError instead)."""
    definer(name, default, help=help, flag_values=flag_values, **args)
    checks = []
    if at_least is not None:
        checks.append((lambda value: value >= at_least, "must be at least %s" % at_least))
    if above is not None:
        checks.append((lambda value: value > above, "must be above %s" % above))
    if fraction:
        checks.append((lambda value: 0 <= value < 1, "must be in [0, 1)"))
    if check is not None:
        checks.append((check, message or "is not valid"))
    for checker, refusal in checks:
        flags.register_validator(name, checker, message="--%s %s" % (name, refusal),
                                 flag_values=flag_values)


def define_shared(logs_dir, sample_freq, ckpt_freq, summary_freq, max_to_keep):
    """Define the flags both trainers have besides the post's nine, with the caller's defaults
    where the trainers differ."""
    # The model's shape (recorded in checkpoint_dir/model.json).
    define(flags.DEFINE_integer, "c_dim", 3, "Image channels: 3 for RGB, 1 for grayscale [3]",
           check=lambda value: value in (1, 3), message="must be 1 (grayscale) or 3 (RGB)")
    define(flags.DEFINE_integer, "gf_dim", 64, "Channels of G's layers at half the image size [64]",
           at_least=1)
    define(flags.DEFINE_integer, "df_dim", 64, "Channels of D's first layer [64]", at_least=1)
    # What a run writes, and how often.
    flags.DEFINE_string("logs_dir", logs_dir, "Folder for TensorBoard logs [%s]" % logs_dir)
    define(flags.DEFINE_integer, "sample_freq", sample_freq,
           "Write samples every this many steps [%d]" % sample_freq, at_least=1)
    define(flags.DEFINE_integer, "ckpt_freq", ckpt_freq,
           "Save a checkpoint every this many steps [%d]" % ckpt_freq, at_least=1)
    define(flags.DEFINE_integer, "summary_freq", summary_freq,
           "Write TensorBoard summaries every this many steps [%d]" % summary_freq, at_least=1)
    define(flags.DEFINE_integer, "max_to_keep", max_to_keep,
           "Checkpoints to keep; 0 keeps all [%d]" % max_to_keep, at_least=0)
    # The machine.
    define(flags.DEFINE_integer, "threads", ALL_CORES, "CPU threads for TensorFlow and for "
           "decoding [every core this process may use: %d]" % ALL_CORES, at_least=1)
    flags.DEFINE_integer("seed", None, "Random seed for the weights, the data order and every "
                         "other random draw [random]")
    flags.DEFINE_enum("device", "auto", DEVICES, "What trains: a GPU if TensorFlow sees one "
                      "(auto), a GPU or stop (gpu), or the CPU (cpu) [auto]")
    # None: this machine's choice, made in main (machine_values), not at import.
    flags.DEFINE_boolean("bf16", None, "bfloat16 mixed precision on oneDNN; --nobf16 for float32 "
                         "[on where the CPU has bfloat16 instructions and no GPU is visible]")
    flags.DEFINE_boolean("mixed_precision", False, "float16 with dynamic loss scaling on an "
                         "NVIDIA GPU; does nothing on a CPU [False]")
    # Read by extras.machine.tfenv before TensorFlow loads; defined here so that absl accepts it.
    flags.DEFINE_boolean("verbose", extras.machine.tfenv.VERBOSE, extras.machine.tfenv.VERBOSE_HELP)


def machine_values(flag_values=flags.FLAGS, **choices):
    """The values of the flags named in `choices`: each flag's own where given, its choice in
    `choices` (this machine's) where it was left at None. The flags stay as parsed."""
    return {name: choice if flag_values[name].value is None else flag_values[name].value
            for name, choice in choices.items()}


def parse_flags(argv):
    """The flags parser for absl's runner (`app.run(main, flags_parser=parse_flags)`): a bad or
    unknown flag is refused in one `error:` line, with exit status 1, where absl prints a FATAL
    line and a hint."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        sys.exit("error: %s (--help lists the flags)" % err)
