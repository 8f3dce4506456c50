"""The documentation against the code: every flag in a command of README.md and docs/*.md is a
flag of the script it is passed to, every relative link and image resolves, every repository file
and code name mentioned exists, docs/flags.md is what tests/flagdoc.py generates, and no tracked
file speaks of how the work was organised instead of what the code does."""
import ast
import glob
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO

import flagdoc

DOCS = ["README.md"] + sorted(os.path.relpath(path, REPO)
                              for path in glob.glob(os.path.join(REPO, "docs", "*.md")))
ARGPARSE_SCRIPTS = ["align_faces.py", "demo_faces.py"] + sorted(
    os.path.relpath(path, REPO) for path in glob.glob(os.path.join(REPO, "bench", "*.py"))
    if "__main__" in open(path).read() and "argparse" in open(path).read())
# Batch scripts whose extra arguments go to a script of ours.
PASSES_ON = {"jobs/train_gpu.sbatch": "gantut_trainer.py",
             "jobs/train_cpu.sbatch": "gantut_trainer.py",
             "jobs/align_faces.sbatch": "align_faces.py"}
# absl's own flags every trainer takes.
ABSL_FLAGS = {"help", "helpfull", "helpshort", "helpxml", "flagfile", "undefok"}
# Scripts at the repository's top, also when called by another path.
KNOWN_BY_NAME = {"gantut_trainer.py", "pix2pix_trainer.py", "align_faces.py", "demo_faces.py"}
# Files of other projects the docs name.
ELSEWHERE = {"align-dlib.py"}


def read(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return f.read()


def fenced_and_prose(text):
    """(the lines of the fenced code blocks, backslash continuations joined; the rest)."""
    code, prose, inside = [], [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
            continue
        if inside:
            if code and code[-1].endswith("\\"):
                code[-1] = code[-1][:-1] + " " + line.strip()
            else:
                code.append(line.strip())
        else:
            prose.append(line)
    return code, "\n".join(prose)


def inline_code(prose):
    """The inline code spans of markdown text; a span may run over a line break."""
    return [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]


def code_of(path):
    code, prose = fenced_and_prose(read(path))
    return code + inline_code(prose)


def argparse_flags(script, help_text):
    """The options in the option column of an argparse --help."""
    found = set()
    for line in help_text.splitlines():
        if line.startswith("  -"):
            found.update(re.findall(r"--([A-Za-z][\w-]*)", re.split(r"\s{2,}", line.strip())[0]))
    assert found, "%s --help lists no options:\n%s" % (script, help_text)
    return found


@pytest.fixture(scope="module")
def trainer_flags():
    return flagdoc.trainer_flags()


# Runs each script given with --help, as `python script --help` would, in this one interpreter
# (TensorFlow, which four of them import, loads once) and prints {script: its help} as JSON.
HELPS = """import contextlib, io, json, os, runpy, sys
helps = {}
for script in sys.argv[1:]:
    sys.argv, sys.path[0] = [script, "--help"], os.path.dirname(os.path.abspath(script))
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as stop:
            assert stop.code in (0, None), "%s --help exited with %s" % (script, stop.code)
    helps[script] = out.getvalue()
print(json.dumps(helps))"""


@pytest.fixture(scope="module")
def script_flags(request):
    """{script: the flag names it takes}, each read from the script itself: the trainers by
    importing them, the argparse scripts from their --help (all of them side by side)."""
    helps = subprocess.Popen([sys.executable, "-c", HELPS] + ARGPARSE_SCRIPTS, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    trainer_flags = request.getfixturevalue("trainer_flags")  # imported while the helps run
    out, err = helps.communicate(timeout=300)
    assert helps.returncode == 0, err[-3000:]
    flags = {script: argparse_flags(script, text)
             for script, text in json.loads(out.strip().splitlines()[-1]).items()}
    for module, defined in trainer_flags.items():
        flags[module + ".py"] = ABSL_FLAGS | {flag["name"] for flag in defined} | {
            "no" + flag["name"] for flag in defined if flag["boolean"]}
    for batch_script, script in PASSES_ON.items():
        flags[batch_script] = flags[script]
    return flags


def commands(text):
    """(script, [its --flags]) for each call of a script of ours in a command line `text`."""
    calls = []
    for part in re.split(r"&&|\|\||;|\s\|\s|\s#", text):
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        for index, word in enumerate(words):
            script = word[2:] if word.startswith("./") else word
            script = os.path.relpath(os.path.normpath(os.path.join(REPO, script)), REPO) \
                if "/" in script and not script.startswith(("~", "/")) else script
            if os.path.basename(script) in KNOWN_BY_NAME:
                script = os.path.basename(script)  # $OLDPWD/gantut_trainer.py and the like
            if script.endswith((".py", ".sbatch")) and (
                    script in PASSES_ON or script.endswith(".py")):
                flags = []
                for arg in words[index + 1:]:
                    if arg.startswith((">", "2>")):
                        break
                    if arg.startswith("--") and len(arg) > 2:
                        flags.append(arg[2:].split("=")[0])
                calls.append((script, flags))
                break
    return calls


@pytest.mark.parametrize("doc", DOCS)
def test_command_flags_exist(doc, script_flags):
    """Every --flag passed to a script of ours in a command of the page is one it takes."""
    wrong, checked = [], 0
    for text in code_of(doc):
        for script, flags in commands(text):
            if script not in script_flags:
                continue  # a script of another project; test_named_files_exist covers ours
            checked += 1
            wrong += ["%s: --%s (in `%s`)" % (script, flag, text) for flag in flags
                      if flag not in script_flags[script]]
    assert not wrong, "flags the script does not take:\n" + "\n".join(wrong)
    if doc == "README.md":
        assert checked >= 10, "README's commands were not found (%d)" % checked


def heading_anchors(text):
    """GitHub's anchors for the headings of a markdown page."""
    _, prose = fenced_and_prose(text)
    anchors = set()
    for title in re.findall(r"^#+\s+(.*)$", prose, re.M):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower().replace("`", "")).replace(" ", "-")
        anchors.add(slug)
    return anchors


@pytest.mark.parametrize("doc", DOCS)
def test_links_resolve(doc):
    """Every relative link and image of the page names a file (and heading) that exists."""
    _, prose = fenced_and_prose(read(doc))
    prose = re.sub(r"`[^`]*`", "", prose)
    broken = []
    for target in re.findall(r"!?\[[^\]]*\]\(([^)\s]+)[^)]*\)", prose):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(REPO, os.path.dirname(doc), path)) if path \
            else os.path.join(REPO, doc)
        if not os.path.exists(full):
            broken.append(target)
        elif anchor and full.endswith(".md") and anchor not in heading_anchors(read(full)):
            broken.append(target + " (no such heading)")
    assert not broken, "%s links to what does not exist: %s" % (doc, broken)


REPO_PATH = re.compile(r"(?<![\w./~$-])((?:extras|bench|jobs|tests|docs|\.ci)/[\w./-]*"
                       r"|[\w-]+\.(?:py|sbatch|sh|md|txt|ini))(?![\w*/-])")


@pytest.mark.parametrize("doc", DOCS)
def test_named_files_exist(doc):
    """Every file of the repository a command or code span of the page names exists."""
    missing = set()
    for text in code_of(doc):
        for path in REPO_PATH.findall(text):
            path = path.rstrip(".")
            bare = "/" not in path
            if path in ELSEWHERE or (bare and not path.endswith((".py", ".sbatch", ".md"))
                                     and not path.startswith("requirements")):
                continue
            if not os.path.exists(os.path.join(REPO, path)):
                missing.add(path)
    assert not missing, "%s names files that do not exist: %s" % (doc, sorted(missing))


def defined_names(path):
    """Top-level names of a Python file, and Class.method for its classes' methods."""
    names = set()
    for node in ast.parse(read(path)).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                names.update("%s.%s" % (node.name, item.name) for item in node.body
                              if isinstance(item, ast.FunctionDef))
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


CODE_NAME = re.compile(r"((?:extras\.)?[a-z]\w*)\.([A-Za-z_][\w.]*)$")


@pytest.mark.parametrize("doc", DOCS)
def test_code_names_exist(doc):
    """Every `module.name` of ours in a code span of the page (`gantut_gan.DCGAN.train`,
    `extras.run.training.TrainingRun`) is defined there."""
    unknown, checked = [], 0
    for span in code_of(doc):
        match = CODE_NAME.match(span)
        if not match:
            continue
        module, name = match.groups()
        path = module.replace(".", "/") + ".py"
        if name in ("py", "sbatch") or not os.path.exists(os.path.join(REPO, path)):
            continue
        checked += 1
        if name not in defined_names(path):
            unknown.append(span)
    assert not unknown, "%s names what the code does not define: %s" % (doc, unknown)
    if doc == "docs/posts.md":
        assert checked >= 40, "docs/posts.md's names were not found (%d)" % checked


def test_flags_page_is_current(trainer_flags):
    """docs/flags.md is what `python -m tests.flagdoc > docs/flags.md` writes now."""
    assert read("docs/flags.md") == flagdoc.markdown(trainer_flags), \
        "docs/flags.md is out of date: run python -m tests.flagdoc > docs/flags.md"


# Words about how the work was organised rather than what the code does: an issue's number,
# the workers who did it, a stint of work called a session (TensorFlow's Session and pytest's
# session hooks are fine).
WORKSHOP = re.compile(r"\bissue\s+[0-9]+|\bagents?\b|\b(?:later|earlier|previous|next|this)\s+"
                      r"session\b|\bsession\s+[0-9]+|\bin\s+one\s+session\b", re.I)


def test_no_workshop_words():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    found = []
    for path in files:
        try:
            text = read(path)
        except (UnicodeDecodeError, FileNotFoundError):
            continue  # images, data
        for match in WORKSHOP.finditer(text):  # a phrase may run over a line break
            line = text.count("\n", 0, match.start()) + 1
            found.append("%s:%d: %s" % (path, line, " ".join(match.group().split())))
    assert not found, "\n".join(found)
