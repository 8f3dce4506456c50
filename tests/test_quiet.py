"""Only our own lines by default (extras/machine/tfenv.py), and TensorBoard without errors about
our folders; real subprocesses, a real pty and a real TensorBoard."""
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import skimage.data
from PIL import Image

import extras.machine.tfenv
from conftest import REPO, TINY, write_images

# Our own line starts, and progress lines (`label: n/total unit, rate unit/s, ETA ...`).
OUR_LINE = re.compile(
    r"( \[\*\]|Epoch|\[Sample\]|error:|warning:|[\w ]+: \d+/\d+ \w+, [\d.]+ \w+/s, ETA )")
# align_faces.py's summary and report lines, and the files it could not read.
ALIGN_LINE = re.compile(r"(aligned: \d+; |report of the images not aligned: |unreadable: )")
CUDA_STUB_LINE = (b"I0000 00:00:1796116552.585095    3534 cudart_stub.cc:31] Could not find cuda "
                  b"drivers on your machine, GPU will not be used.\n")


def run_python(code, **options):
    """Run `code` in a new interpreter with the repository importable."""
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=60,
                          env={**os.environ, "PYTHONPATH": REPO}, **options)


def output_lines(cwd, *args, script="gantut_trainer.py"):
    """The lines one of our programs prints on stdout and stderr together, and its exit code."""
    result = subprocess.run([sys.executable, os.path.join(REPO, script), *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=300)
    return result.stdout.splitlines(), result.returncode


@pytest.mark.parametrize("argv,environ,verbose", [
    ([], {}, False), (["--verbose"], {}, True), (["-verbose"], {}, True),
    (["--verbose=false"], {}, False), (["--verbose", "--noverbose"], {}, False),
    (["--", "--verbose"], {}, False), (["--verbosity=1"], {}, False),
    ([], {"GANTUT_VERBOSE": "1"}, True), (["--noverbose"], {"GANTUT_VERBOSE": "1"}, False)])
def test_verbose_is_read_from_the_command_line_and_the_environment(argv, environ, verbose):
    assert extras.machine.tfenv.verbose_requested(["prog"] + argv, environ) is verbose


def test_a_program_that_is_not_ours_keeps_its_stderr():
    result = run_python("import sys, extras.machine.tfenv; print(sys.stderr.fileno())",
                        capture_output=True, text=True)
    assert result.stdout == "2\n" and result.stderr == ""


def test_the_filter_drops_only_the_listed_lines_and_loses_nothing_at_exit():
    code = "\n".join([
        "import os, sys, extras.machine.tfenv",
        "extras.machine.tfenv.filter_stderr(extras.machine.tfenv.FILTERED)",
        "os.write(2, b'C++ line 1\\n')",
        "os.write(2, %r)" % CUDA_STUB_LINE,
        "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are "
        "written to STDERR\\n')",
        "os.write(2, b'E0000 00:00:1.5 7 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
        "UNKNOWN ERROR (303)\\nE0000 00:00:1.6 7 cuda_platform.cc:52] failed call to cuInit: "
        "CUDA_ERROR_NO_DEVICE (100)\\n')",
        "sys.stderr.write('step: 1/2 steps\\r')",
        "sys.stderr.write('step: 2/2 steps\\n')",
        "os.write(2, b'C++ line 2 without its end')",
        "sys.exit('error: the end')"])
    result = run_python(code, capture_output=True)
    assert result.returncode == 1
    # Python's lines and the C++ ones come by two paths: each in its order, whole.
    lines = re.split(rb"[\r\n]", result.stderr)
    assert [line for line in lines if line.startswith(b"C++")] == [
        b"C++ line 1", b"C++ line 2 without its end"]
    assert b"step: 1/2 steps\r" in result.stderr
    assert [line for line in lines if line.startswith((b"step", b"error"))] == [
        b"step: 1/2 steps", b"step: 2/2 steps", b"error: the end"]
    assert [line for line in lines if b"cuInit" in line] == [
        b"E0000 00:00:1.6 7 cuda_platform.cc:52] failed call to cuInit: CUDA_ERROR_NO_DEVICE (100)"]
    assert b"cudart_stub" not in result.stderr and b"InitializeLog" not in result.stderr


def test_a_terminal_stays_a_terminal_for_progress_lines():
    main, child = os.openpty()
    code = ("import sys, extras.machine.tfenv as tfenv; tfenv.filter_stderr(tfenv.FILTERED); "
            "print(sys.stderr.isatty()); sys.stderr.write('a: 1/2 x\\ra: 2/2 x\\n')")
    result = run_python(code, stdout=subprocess.PIPE, stderr=child, text=True)
    os.close(child)
    assert result.stdout == "True\n"
    assert b"a: 1/2 x\ra: 2/2 x" in os.read(main, 1000)
    os.close(main)


def test_training_at_this_machines_defaults_prints_only_our_lines(trained_model):
    lines = (trained_model.stdout + trained_model.stderr).splitlines()
    assert any(line.startswith("Epoch") for line in lines)
    assert [line for line in lines if not OUR_LINE.match(line)] == []


def test_training_with_verbose_shows_no_grappler_failure(tmp_path):
    write_images(str(tmp_path / "faces"), 8, 16)
    lines, returncode = output_lines(str(tmp_path), "--dataset", "faces", "--epoch", "1",
                                     "--verbose", *TINY)
    assert returncode == 0, lines[-20:]
    assert any(line.startswith("Epoch") for line in lines)
    assert [line for line in lines if re.search(r"optimizer.*(failed|error)", line, re.I)] == []


def test_generating_from_a_checkpoint_prints_only_our_lines(model_copy):
    lines, returncode = output_lines(str(model_copy), "--train=False", "--n_samples", "4")
    assert returncode == 0, lines
    assert lines and [line for line in lines if not OUR_LINE.match(line)] == []


def test_a_missing_dataset_folder_prints_exactly_one_line(tmp_path):
    lines, returncode = output_lines(str(tmp_path), "--dataset", "missing", *TINY)
    assert returncode == 1
    assert len(lines) == 1 and lines[0].startswith("error: dataset folder missing does not exist")


def test_verbose_brings_tensorflows_lines_back(tmp_path):
    lines, _ = output_lines(str(tmp_path), "--dataset", "missing", "--verbose", *TINY)
    assert len(lines) > 1 and any("cudart_stub" in line or "cuInit" in line for line in lines)


def test_aligning_photos_prints_only_our_lines(tmp_path):
    (tmp_path / "photos").mkdir()
    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "photos" / "astronaut.jpg")
    Image.fromarray(skimage.data.coffee()).save(tmp_path / "photos" / "coffee.jpg")
    (tmp_path / "photos" / "text.jpg").write_text("not a photo\n")
    lines, returncode = output_lines(str(tmp_path), "photos", "align", "innerEyesAndBottomLip",
                                     "aligned", "--workers", "2", script="align_faces.py")
    assert returncode == 0, lines
    assert [line for line in lines if not (ALIGN_LINE.match(line) or OUR_LINE.match(line))] == []


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def test_tensorboard_on_the_logs_folder_shows_no_error_about_our_folders(trained_model):
    port = free_port()
    board = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", "logs",
                              "--host", "127.0.0.1", "--port", str(port),
                              "--reload_interval", "1"],
                             cwd=str(trained_model.folder), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        base = "http://127.0.0.1:%d/data/" % port
        for _ in range(120):
            try:
                get(base + "plugins_listing")
                break
            except OSError:
                time.sleep(0.5)
        # The projector is what looks for checkpoints: it finds ours through logs/checkpoint.
        get(base + "plugin/projector/runs")
        time.sleep(2.5)  # two reloads
        projector_runs = get(base + "plugin/projector/runs")
    finally:
        board.terminate()
        _, errors = board.communicate(timeout=30)
    for bad in ("FailedPreconditionError", "Checkpoint ignored", "Is a directory"):
        assert bad not in errors, errors[-2000:]
    assert projector_runs == '["."]'
