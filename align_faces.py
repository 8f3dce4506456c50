#!/usr/bin/env python3
"""Align faces to small square crops: Part 2 of the posts
"Generative Adversarial Network (GAN) in TensorFlow", with the algorithm and
command line of OpenFace's util/align-dlib.py that Part 2 uses:

    ./align_faces.py ./raw_images align innerEyesAndBottomLip ./aligned --size 64

The PNG crops go flat into the output folder, beside a report of the images
not aligned; an interrupted run resumes. Importable too: `align_image(rgb, 64)`.
"""
import argparse
import collections
import concurrent.futures
import enum
import hashlib
import multiprocessing
import os
import re
import signal
import sys
import warnings

import cv2
import dlib
import numpy as np
from PIL import Image

from gantut_imgfuncs import center_crop, open_image
from extras.data.faces import default_predictor_path, detect_faces, largest_face, load_models
from extras.utils import Progress, atomic_path, image_files, node_line, remove_stale_temp_files

# OpenFace's mean face: the 68 dlib landmarks averaged over aligned faces
# (openface/align_dlib.py), as (x, y).
TEMPLATE = np.float32([
    (0.0792396913815, 0.339223741112), (0.0829219487236, 0.456955367943),
    (0.0967927109165, 0.575648016728), (0.122141515615, 0.691921601066),
    (0.168687863544, 0.800341263616), (0.239789390707, 0.895732504778),
    (0.325662452515, 0.977068762493), (0.422318282013, 1.04329000149),
    (0.531777802068, 1.06080371126), (0.641296298053, 1.03981924107),
    (0.738105872266, 0.972268833998), (0.824444363295, 0.889624082279),
    (0.894792677532, 0.792494155836), (0.939395486253, 0.681546643421),
    (0.96111933829, 0.562238253072), (0.970579841181, 0.441758925744),
    (0.971193274221, 0.322118743967), (0.163846223133, 0.249151738053),
    (0.21780354657, 0.204255863861), (0.291299351124, 0.192367318323),
    (0.367460241458, 0.203582210627), (0.4392945113, 0.233135599851),
    (0.586445962425, 0.228141644834), (0.660152671635, 0.195923841854),
    (0.737466449096, 0.182360984545), (0.813236546239, 0.192828009114),
    (0.8707571886, 0.235293377042), (0.51534533827, 0.31863546193),
    (0.516221448289, 0.396200446263), (0.517118861835, 0.473797687758),
    (0.51816430343, 0.553157797772), (0.433701156035, 0.604054457668),
    (0.475501237769, 0.62076344024), (0.520712933176, 0.634268222208),
    (0.565874114041, 0.618796581487), (0.607054002672, 0.60157671656),
    (0.252418718401, 0.331052263829), (0.298663015648, 0.302646354002),
    (0.355749724218, 0.303020650651), (0.403718978315, 0.33867711083),
    (0.352507175597, 0.349987615384), (0.296791759886, 0.350478978225),
    (0.631326076346, 0.334136672344), (0.679073381078, 0.29645404267),
    (0.73597236153, 0.294721285802), (0.782865376271, 0.321305281656),
    (0.740312274764, 0.341849376713), (0.68499850091, 0.343734332172),
    (0.353167761422, 0.746189164237), (0.414587777921, 0.719053835073),
    (0.477677654595, 0.706835892494), (0.522732900812, 0.717092275768),
    (0.569832064287, 0.705414478982), (0.635195811927, 0.71565572516),
    (0.69951672331, 0.739419187253), (0.639447159575, 0.805236879972),
    (0.576410514055, 0.835436670169), (0.525398405766, 0.841706377792),
    (0.47641545769, 0.837505914975), (0.41379548902, 0.810045601727),
    (0.380084785646, 0.749979603086), (0.477955996282, 0.74513234612),
    (0.523389793327, 0.748924302636), (0.571057789237, 0.74332894691),
    (0.672409137852, 0.744177032192), (0.572539621444, 0.776609286626),
    (0.5240106503, 0.783370783245), (0.477561227414, 0.778476346951)])

# The template scaled so that the face spans [0, 1] in x and y; times the
# crop size it gives where each landmark lands in the crop.
MINMAX_TEMPLATE = ((TEMPLATE - TEMPLATE.min(axis=0))
                   / (TEMPLATE.max(axis=0) - TEMPLATE.min(axis=0)))

INNER_EYES_AND_BOTTOM_LIP = [39, 42, 57]
OUTER_EYES_AND_NOSE = [36, 45, 33]
LANDMARK_INDICES = {'innerEyesAndBottomLip': INNER_EYES_AND_BOTTOM_LIP,
                    'outerEyesAndNose': OUTER_EYES_AND_NOSE}

# A bilinear warp that shrinks more than 2x skips source pixels and aliases,
# so larger shrinks are done partly by area averaging first.
MAX_WARP_SHRINK = 2.0

# Output names keep this many bytes of the input's path, leaving room in the
# 255-byte file name limit for the hash and the temp suffix.
NAME_STEM_MAX_BYTES = 150


class Outcome(str, enum.Enum):
    """Part 2: what became of one input image; the values are the summary's words."""
    ALIGNED = 'aligned'
    ALREADY_THERE = 'already there'
    NO_FACE = 'no face'
    SEVERAL_FACES = 'several faces skipped'
    UNREADABLE = 'unreadable'
    CENTER_CROP = 'centre crop (no face)'
    KILLED = 'killed its worker twice'


Settings = collections.namedtuple(
    'Settings', 'size landmarks upsample skip_multi fallback predictor_path')


# --- Models and the alignment itself -------------------------------------------

def pick_face(faces, skip_multi=False):
    """Part 2: OpenFace's choice of face, the largest, ties broken by detector score: (box,
    None), or (None, Outcome) saying why there is none."""
    if not faces:
        return None, Outcome.NO_FACE
    if skip_multi and len(faces) > 1:
        return None, Outcome.SEVERAL_FACES
    return largest_face(faces), None


def find_landmarks(rgb, models=None, upsample=1, skip_multi=False):
    """Part 2: the 68 dlib landmarks (68x2 float array of x, y) of the face OpenFace would pick:
    (landmarks, None), or (None, Outcome) saying why there are none."""
    models = models or load_models()
    box, failure = pick_face(detect_faces(rgb, models.detector, upsample), skip_multi)
    if failure:
        return None, failure
    # The predictor reads pixels inside the box, so the full image gives
    # landmarks as precise as the photo allows.
    shape = models.predictor(rgb, box)
    return np.float32([(point.x, point.y) for point in shape.parts()]), None


def warp_to_template(rgb, landmarks, size, indices):
    """Part 2: the size x size crop whose three chosen landmarks sit on the mean face template."""
    source = np.float32(landmarks[indices])
    target = np.float32(size * MINMAX_TEMPLATE[indices])
    scale = np.sqrt(abs(np.linalg.det(cv2.getAffineTransform(source, target)[:, :2])))
    if scale * MAX_WARP_SHRINK < 1.0:
        shrink = scale * MAX_WARP_SHRINK
        rgb = cv2.resize(rgb, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        source = np.float32((source + 0.5) * shrink - 0.5)
    return cv2.warpAffine(rgb, cv2.getAffineTransform(source, target), (size, size))


def align_image(rgb, size=64, landmarks='innerEyesAndBottomLip', models=None,
                upsample=1, skip_multi=False):
    """Part 2: OpenFace's alignment of an RGB uint8 array to a size x size crop: (crop, None),
    or (None, Outcome) saying why there is no crop."""
    points, failure = find_landmarks(rgb, models, upsample, skip_multi)
    if failure:
        return None, failure
    return warp_to_template(rgb, points, size, LANDMARK_INDICES[landmarks]), None


# --- Files: naming and sharding --------------------------------------------------

def path_digest(relative_path):
    """Part 2: a stable hex digest of a relative path, the same on every machine."""
    return hashlib.sha1(os.fsencode(relative_path.replace(os.sep, '/'))).hexdigest()


def output_name(relative_path):
    """Part 2: the flat PNG name for an input, distinct for distinct paths, e.g.
    'celebA/000001.jpg' -> 'celebA__000001_8aa46abb.png'."""
    # The hash of the whole path: the readable part collides ('a/b.jpg', 'a__b.jpg', 'a/b.png').
    # No leading dot: names starting with one are our temp files.
    stem = os.path.splitext(relative_path)[0].replace(os.sep, '__').lstrip('.')
    stem = os.fsdecode(os.fsencode(stem)[:NAME_STEM_MAX_BYTES])
    return f'{stem}_{path_digest(relative_path)[:8]}.png'


def in_shard(relative_path, shard):
    """Part 2: whether an input belongs to shard (K, N), by a stable hash of its path."""
    # Not a position in the listing: an array job's tasks may list the folder at different moments.
    index, count = shard
    return int(path_digest(relative_path), 16) % count == index - 1


# --- One worker process per core ------------------------------------------------

_worker = {}  # a pool initializer can hand state to its tasks only through globals


def init_worker(settings, started):
    """Part 2: worker initializer: load the models once per worker process; each photo's path
    goes to the queue `started` as its work begins."""
    # Ctrl-C reaches the whole process group; the main process stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Pillow warns from 1x its pixel limit and refuses from 2x; the refusal is
    # reported, the warning would only garble the progress line.
    warnings.simplefilter('ignore', Image.DecompressionBombWarning)
    cv2.setNumThreads(1)  # the parallelism is one process per core
    _worker['settings'] = settings
    _worker['started'] = started
    _worker['models'] = load_models(settings.predictor_path)


def process_file(job):
    """Part 2: read, align and write one photo; returns (relative path, Outcome, reason or '')."""
    relative_path, input_path, output_path = job
    _worker['started'].put(relative_path)
    settings = _worker['settings']
    try:
        rgb = np.asarray(open_image(input_path))
    except Exception as error:  # Pillow raises many types for broken files
        return relative_path, Outcome.UNREADABLE, f'{type(error).__name__}: {error}'
    crop, failure = align_image(rgb, settings.size, settings.landmarks, _worker['models'],
                                settings.upsample, settings.skip_multi)
    if failure is Outcome.NO_FACE and settings.fallback == 'center':
        side = min(rgb.shape[:2])  # the largest centred square
        crop, failure = center_crop(rgb, side, resize_w=settings.size), Outcome.CENTER_CROP
    if crop is not None:
        with atomic_path(output_path) as temp_path:
            Image.fromarray(crop).save(temp_path)
    return relative_path, failure or Outcome.ALIGNED, ''


def align_jobs(jobs, settings, workers):
    """Part 2: yield (relative path, Outcome, reason) for every job, in `workers` processes; a
    photo under way when a worker died is tried again alone, and KILLED if its worker dies too."""
    queue = list(jobs)
    while queue:
        suspects, queue = yield from pool_results(queue, settings, workers)
        if queue and not suspects:
            sys.exit(f'error: a worker process died before it began any photo (out of memory '
                     f'while loading the models?), {len(queue)} photos left. Rerun with fewer '
                     f'--workers.')
        for job in suspects:
            under_way, not_started = yield from pool_results([job], settings, 1)
            if under_way or not_started:
                yield job[0], Outcome.KILLED, 'its worker process died twice (out of memory?)'


def pool_results(jobs, settings, workers):
    """Part 2: yield the results of `jobs` from a pool of fresh processes; return the jobs it
    did not finish as (under way when a worker died, not started), both empty if none died."""
    # Fresh processes rather than forks: a fork of a process that has
    # started threads (OpenCV's pool, TensorFlow) can deadlock in them.
    spawn = multiprocessing.get_context('spawn')
    started = spawn.SimpleQueue()  # written whole by each put: no feeder thread to lose it
    finished = set()
    pool = concurrent.futures.ProcessPoolExecutor(min(workers, len(jobs)), spawn, init_worker,
                                                  (settings, started))
    try:
        futures = [pool.submit(process_file, job) for job in jobs]
        for future in concurrent.futures.as_completed(futures):
            result = future.result()
            finished.add(result[0])
            yield result
    except concurrent.futures.process.BrokenProcessPool:
        pass
    finally:
        # On Ctrl-C too: the photos under way finish, the rest are dropped.
        pool.shutdown(cancel_futures=True)
    begun = set()
    while not started.empty():
        begun.add(started.get())
    left = [job for job in jobs if job[0] not in finished]
    return [job for job in left if job[0] in begun], [job for job in left if job[0] not in begun]


# --- Progress, report and the whole run -------------------------------------------

def summary_line(counts):
    """Part 2: 'aligned: N; already there: N; ...' with every Outcome."""
    return '; '.join(f'{outcome.value}: {counts[outcome]}' for outcome in Outcome)


def report_path(output_dir, shard):
    """Part 2: where a run writes its report; each shard of an array job its own."""
    index, count = shard
    suffix = f'_shard{index}of{count}' if count > 1 else ''
    return os.path.join(output_dir, f'align_faces_report{suffix}.txt')


def write_report(path, counts, failures):
    """Part 2: the summary and one 'outcome<TAB>input path<TAB>reason' line per image not aligned."""
    lines = [f'# {summary_line(counts)}'] + ['\t'.join(failure) for failure in sorted(failures)]
    with atomic_path(path) as temp_path, open(temp_path, 'wb') as file:
        file.write(os.fsencode('\n'.join(lines) + '\n'))


def plan_jobs(input_dir, output_dir, shard, counts):
    """Part 2: (relative path, input, output) for this shard's images not aligned yet; those
    whose output exists are counted in `counts` as already there."""
    existing = set(os.listdir(output_dir))
    jobs = []
    for relative_path in image_files(input_dir, skip_dir=output_dir):
        if not in_shard(relative_path, shard):
            continue
        name = output_name(relative_path)
        if name in existing:
            counts[Outcome.ALREADY_THERE] += 1
        else:
            jobs.append((relative_path, os.path.join(input_dir, relative_path),
                         os.path.join(output_dir, name)))
    return jobs


def align_folder(input_dir, output_dir, settings, workers, shard=(1, 1), stream=None):
    """Part 2: align every photo of input_dir (this shard of them) into output_dir, progress on
    stream (default: stderr); return (counts by Outcome, report path)."""
    os.makedirs(output_dir, exist_ok=True)
    remove_stale_temp_files(output_dir)
    counts = collections.Counter()
    jobs = plan_jobs(input_dir, output_dir, shard, counts)
    failures = []
    if jobs:
        progress = Progress('aligning', len(jobs), 'images', stream)
        for relative_path, outcome, reason in align_jobs(jobs, settings, workers):
            counts[outcome] += 1
            if outcome in (Outcome.UNREADABLE, Outcome.KILLED):
                progress.note(f'{outcome.value}: {relative_path}: {reason}')
            if outcome is not Outcome.ALIGNED:
                failures.append((outcome.value, relative_path, reason))
            progress.advance()
    path = report_path(output_dir, shard)
    write_report(path, counts, failures)
    return counts, path


# --- Command line ---------------------------------------------------------------

def available_cores():
    """Part 2: the number of cores this process may run on (its CPU affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def int_at_least(minimum):
    """Part 2: an argparse type for integers >= minimum."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not a whole number')
        if value < minimum:
            raise argparse.ArgumentTypeError(f'{value} is less than {minimum}')
        return value
    return parse


def parse_shard(text):
    """Part 2: '--shard K/N' as (K, N) with 1 <= K <= N."""
    match = re.fullmatch(r'(\d+)/(\d+)', text.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise argparse.ArgumentTypeError(
            f'{text!r} is not K/N with 1 <= K <= N; e.g. --shard 3/10 is the third of 10 parts '
            '(in an array job: --shard $SLURM_ARRAY_TASK_ID/10 with --array=1-10)')
    return int(match[1]), int(match[2])


def build_parser():
    """Part 2: the command line of OpenFace's align-dlib.py plus the options of this port."""
    parser = argparse.ArgumentParser(
        description="Align the faces in a folder of photos to square PNG crops, as OpenFace's "
                    "align-dlib.py in Part 2 of the posts.",
        epilog='example: %(prog)s ./raw_images align innerEyesAndBottomLip ./aligned --size 64')
    parser.add_argument('inputDir', help='folder of photos, searched recursively for '
                                         '.jpg/.jpeg/.png files (any case)')
    parser.add_argument('mode', choices=['align'],
                        help="'align', as in align-dlib.py (its computeMean mode is not ported)")
    parser.add_argument('landmarks', choices=list(LANDMARK_INDICES),
                        help='the three landmarks mapped onto the mean face: the inner eye '
                             'corners and the bottom lip, or the outer eye corners and the nose')
    parser.add_argument('outputDir', help='folder the crops are written to, flat, so that '
                                          './gantut_trainer.py --dataset <it> trains on them; '
                                          'created if missing')
    parser.add_argument('--size', type=int_at_least(1), default=64,
                        help='edge of the square crops in pixels (default: %(default)s)')
    parser.add_argument('--dlibFacePredictor', metavar='PATH',
                        help="dlib's 68-landmark model file (default: the one shipped in the "
                             'pip package face-recognition-models)')
    parser.add_argument('--skipMulti', action='store_true',
                        help='skip photos with more than one face instead of aligning the largest')
    parser.add_argument('--upsample', type=int_at_least(0), default=1,
                        help='times the face detector doubles the photo to find small faces '
                             '(default: %(default)s, as OpenFace; 0 is about 3x faster but '
                             'misses faces smaller than about 80 px)')
    parser.add_argument('--workers', type=int_at_least(1), default=available_cores(),
                        help='processes aligning in parallel (default: the %(default)s cores '
                             'this process may use)')
    parser.add_argument('--shard', type=parse_shard, default=(1, 1), metavar='K/N',
                        help='process only part K of N of the photos, so that the N tasks of an '
                             'array job cover them once (default: all)')
    parser.add_argument('--fallback', choices=['center'],
                        help="'center': when no face is found, write a centre crop instead "
                             '(counted apart)')
    return parser


def check_folders(parser, args):
    """Part 2: exit with a clear message when the input or output folder cannot work."""
    if not os.path.isdir(args.inputDir):
        parser.error(f'input folder {args.inputDir!r} does not exist or is not a folder; '
                     'give the folder of raw photos, e.g. ./raw_images')
    if os.path.isdir(args.outputDir) and os.path.samefile(args.inputDir, args.outputDir):
        parser.error(f'output folder {args.outputDir!r} is the input folder; '
                     'give a separate folder, e.g. ./aligned')


def check_predictor(parser, predictor_path):
    """Part 2: exit with a clear message when the landmark model cannot be loaded."""
    # Here, once: a Pool restarts a worker whose initializer fails, forever.
    try:
        dlib.shape_predictor(predictor_path or default_predictor_path())
    except (OSError, RuntimeError) as error:
        parser.error(f'--dlibFacePredictor: cannot load the model ({error}); '
                     "give the path of dlib's shape_predictor_68_face_landmarks.dat")


def create_output_folder(parser, output_dir):
    """Part 2: create the output folder, or exit with a clear message."""
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as error:
        parser.error(f'cannot create output folder {output_dir!r} ({error}); '
                     'give a folder you can write to')


def main(argv=None):
    """Part 2: run align_faces.py; exit status 0 when the run completed, failures included."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_folders(parser, args)
    check_predictor(parser, args.dlibFacePredictor)
    create_output_folder(parser, args.outputDir)
    settings = Settings(args.size, args.landmarks, args.upsample, args.skipMulti,
                        args.fallback, args.dlibFacePredictor)
    # Flushed now: in a job's log it comes before the progress lines on stderr.
    print('%s, shard %d/%d' % ((node_line(args.workers, 'workers'),) + args.shard), flush=True)
    try:
        counts, path = align_folder(args.inputDir, args.outputDir, settings, args.workers,
                                    args.shard)
    except KeyboardInterrupt:
        sys.exit('\ninterrupted; run the same command again to finish (finished crops are kept)')
    if not sum(counts.values()):
        print(f'found no .jpg/.jpeg/.png files to align in {args.inputDir!r}')
    print(summary_line(counts))
    print(f'report of the images not aligned: {path}')


if __name__ == '__main__':
    main()
