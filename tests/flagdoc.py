"""docs/flags.md from the trainers' flag definitions; regenerate it from the repository folder:

    python -m tests.flagdoc > docs/flags.md

tests/test_docs.py checks that docs/flags.md is what this prints."""
import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINERS = ("gantut_trainer", "pix2pix_trainer")
# The flags Part 5's trainer defines, in the post's order.
POSTS_FLAGS = ("epoch", "learning_rate", "beta1", "train_size", "batch_size", "image_size",
               "dataset", "checkpoint_dir", "sample_dir")

# Imports a trainer and prints its own flags, in the order it defines them, as JSON.
DUMP = """import json, sys
from absl import flags
import %s
out = []
for flag in flags.FLAGS.flags_by_module_dict()[%r]:
    out.append({"name": flag.name, "type": flag.flag_type(), "help": flag.help,
                "boolean": flag.boolean,
                "choices": list(getattr(getattr(flag, "parser", None), "enum_values", None) or [])})
print(json.dumps(out))"""

PREAMBLE = """# Flags

Every flag of the two trainers, with its one-line help; the default is in brackets at its end.
`--help` prints the same list; `--helpfull` adds absl's own flags. A boolean flag `--x` is turned
off with `--nox` (or `--x=false`). A value a flag does not take, or a flag that does not exist,
stops the trainer at start in one `error:` line naming it.

Precision: `--bf16` is the CPU's choice (bfloat16 where the CPU has AVX512-BF16 or AMX);
`--mixed_precision` is the NVIDIA GPU's (float16 with dynamic loss scaling, off by default until
measured on a GPU; on a CPU it does nothing but say so; [gpu-and-cluster.md](gpu-and-cluster.md)).

This page is generated from the flag definitions (`python -m tests.flagdoc > docs/flags.md`);
`tests/test_docs.py` fails when it is out of date.
"""

TITLES = {
    "gantut_trainer": ("gantut_trainer.py", "The DCGAN trainer (Part 5). The post's nine flags "
                       "come first, marked *post*; ours follow."),
    "pix2pix_trainer": ("pix2pix_trainer.py", "The pix2pix trainer ([pix2pix.md](pix2pix.md))."),
}


def trainer_flags():
    """{trainer module: the flags it defines, in its order, as dicts of name, type, help,
    boolean, choices}. Each trainer is imported in its own interpreter (both define some of the
    same names), the two side by side."""
    procs = {module: subprocess.Popen([sys.executable, "-c", DUMP % (module, module)], cwd=REPO,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for module in TRAINERS}
    found = {}
    for module, proc in procs.items():
        out, err = proc.communicate()
        if proc.returncode:
            raise RuntimeError("importing %s failed:\n%s" % (module, err[-3000:]))
        found[module] = json.loads(out.strip().splitlines()[-1])
    return found


def portable_help(text):
    """A flag's help without absl's list of an enum's values (the table has them) and without
    this machine's core count (--threads' default names it)."""
    text = re.sub(r"^<[^>]*>: ", "", " ".join(text.split()))
    return re.sub(r"(\[every core[^\]:]*): \d+\]", r"\1]", text)


def flag_cell(flag):
    if flag["boolean"]:
        return "`--%s`, `--no%s`" % (flag["name"], flag["name"])
    return "`--%s`" % flag["name"]


def type_cell(flag):
    if flag["choices"]:
        return " \\| ".join("`%s`" % choice for choice in flag["choices"])
    return "bool" if flag["boolean"] else flag["type"]


def markdown(flags_of=None):
    """The text of docs/flags.md; `flags_of`: trainer_flags(), if already at hand."""
    flags_of = flags_of or trainer_flags()
    parts = [PREAMBLE]
    for module in TRAINERS:
        script, intro = TITLES[module]
        parts.append("## %s\n\n%s\n\n| flag | takes | help [default] |\n| --- | --- | --- |"
                     % (script, intro))
        rows = []
        for flag in flags_of[module]:
            post = " *post*" if module == "gantut_trainer" and flag["name"] in POSTS_FLAGS else ""
            rows.append("| %s%s | %s | %s |" % (flag_cell(flag), post, type_cell(flag),
                                                portable_help(flag["help"]).replace("|", "\\|")))
        parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(markdown())
