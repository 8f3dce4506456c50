"""Tests for demo_faces.py, the procedural demo dataset beside Part 5, on real files in tmp_path."""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# The project's scripts are flat top-level modules; make them importable however pytest is run.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import demo_faces  # noqa: E402

LUMA = np.array([0.299, 0.587, 0.114])


def face_files(folder):
    return sorted(p for p in Path(folder).iterdir() if demo_faces.FACE_NAME.match(p.name))


def file_bytes(folder):
    return {p.name: p.read_bytes() for p in face_files(folder)}


def file_identities(folder):
    """(inode, mtime) per file: both change when a file is rewritten through a temp file."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in face_files(folder)}


def marker(folder):
    return json.loads((Path(folder) / demo_faces.MARKER_NAME).read_text())


@pytest.fixture(scope="module")
def drawn_faces():
    """50 faces at 64 px with their params, drawn in memory."""
    faces = []
    for i in range(50):
        params = demo_faces.random_face_params(np.random.default_rng([7, i]))
        faces.append((params, np.asarray(demo_faces.draw_face(params, 64), dtype=float)))
    return faces


def pixel_at(params, u, v, size=64):
    """(row, column) of the face-unit point (u, v) in a `size` image."""
    return (int((params.centre_y + v * params.half_height) * size),
            int((params.centre_x + u * params.half_width) * size))


def test_same_seed_gives_identical_files_and_another_seed_different_ones(tmp_path):
    first = file_bytes(demo_faces.make_demo_dataset(tmp_path / "a", n_images=10, seed=3))
    again = file_bytes(demo_faces.make_demo_dataset(tmp_path / "b", n_images=10, seed=3))
    other = file_bytes(demo_faces.make_demo_dataset(tmp_path / "c", n_images=10, seed=4))
    assert len(first) == 10
    assert first == again
    assert all(first[name] != other[name] for name in first)


def test_an_image_depends_only_on_seed_and_index(tmp_path):
    ten = file_bytes(demo_faces.make_demo_dataset(tmp_path / "ten", n_images=10))
    twenty = file_bytes(demo_faces.make_demo_dataset(tmp_path / "twenty", n_images=20))
    assert len(twenty) == 20
    assert all(twenty[name] == data for name, data in ten.items())


@pytest.mark.parametrize("size", [16, 32, 64, 128])
def test_files_have_the_requested_size_in_rgb(tmp_path, size):
    folder = demo_faces.make_demo_dataset(tmp_path, n_images=2, size=size)
    for path in face_files(folder):
        with Image.open(path) as image:
            assert (image.size, image.mode) == ((size, size), "RGB")


def test_parallel_drawing_writes_the_same_files_as_serial(tmp_path, monkeypatch):
    serial = file_bytes(demo_faces.make_demo_dataset(tmp_path / "serial", n_images=6))
    monkeypatch.setattr(demo_faces, "PARALLEL_MIN_IMAGES", 1)
    assert file_bytes(demo_faces.make_demo_dataset(tmp_path / "parallel", n_images=6)) == serial


def test_faces_differ_from_each_other(drawn_faces):
    images = [image for _, image in drawn_faces]
    differences = [np.abs(a - b).mean() for i, a in enumerate(images) for b in images[:i]]
    assert min(differences) > 5
    assert np.mean(differences) > 40


def test_cheeks_show_the_skin_tone_and_tones_span_a_wide_range(drawn_faces):
    cheek_luma = []
    for params, image in drawn_faces:
        for side in (-1, 1):
            row, col = pixel_at(params, side * 0.6, 0.05)
            cheek = np.median(image[row - 1:row + 2, col - 1:col + 2].reshape(-1, 3), axis=0)
            assert np.abs(cheek - params.skin).max() <= 6
            cheek_luma.append(cheek @ LUMA)
    assert max(cheek_luma) - min(cheek_luma) > 100


def test_eyes_are_darker_than_the_cheeks(drawn_faces):
    ratios = []
    for params, image in drawn_faces:
        luma = image @ LUMA
        cheek = luma[pixel_at(params, 0.6, 0.05)]
        for side in (-1, 1):
            row, col = pixel_at(params, side * params.eye_spacing, params.eye_v)
            darkest = luma[row - 2:row + 3, col - 2:col + 3].min()
            assert darkest < cheek - 10
            ratios.append(darkest / cheek)
    assert np.mean(ratios) < 0.4


def test_faces_are_framed_like_aligned_celeba_crops(drawn_faces):
    eye_rows = [p.centre_y + p.eye_v * p.half_height for p, _ in drawn_faces]
    mouth_rows = [p.centre_y + p.mouth_v * p.half_height for p, _ in drawn_faces]
    assert 0.37 < min(eye_rows) and max(eye_rows) < 0.48
    assert 0.68 < min(mouth_rows) and max(mouth_rows) < 0.8
    assert abs(np.mean(eye_rows) - 0.42) < 0.03 and abs(np.mean(mouth_rows) - 0.74) < 0.03


def test_the_face_stands_out_from_the_background(drawn_faces):
    contrasts = []
    for _, image in drawn_faces:
        centre = image[22:42, 22:42].reshape(-1, 3).mean(axis=0)
        top_corners = np.concatenate([image[:6, :6], image[:6, -6:]]).reshape(-1, 3).mean(axis=0)
        contrasts.append(np.abs(centre - top_corners).mean())
    assert np.mean(contrasts) > 35
    assert np.mean(np.array(contrasts) > 15) >= 0.8


def test_a_second_call_returns_without_drawing(tmp_path, monkeypatch):
    folder = demo_faces.make_demo_dataset(tmp_path, n_images=12)
    assert folder == str(tmp_path)
    before = file_identities(folder)

    def refuse_to_draw(*args, **kwargs):
        raise AssertionError("drew a face although the set was complete")

    monkeypatch.setattr(demo_faces, "draw_face", refuse_to_draw)
    assert demo_faces.make_demo_dataset(tmp_path, n_images=12) == folder
    assert file_identities(folder) == before


def test_a_different_spec_redraws_the_set(tmp_path):
    demo_faces.make_demo_dataset(tmp_path / "set", n_images=8, seed=0)
    reseeded = file_bytes(demo_faces.make_demo_dataset(tmp_path / "set", n_images=8, seed=1))
    fresh = file_bytes(demo_faces.make_demo_dataset(tmp_path / "fresh", n_images=8, seed=1))
    assert reseeded == fresh
    assert marker(tmp_path / "set")["seed"] == 1

    demo_faces.make_demo_dataset(tmp_path / "set", n_images=8, size=32, seed=1)
    for path in face_files(tmp_path / "set"):
        with Image.open(path) as image:
            assert image.size == (32, 32)


def test_new_drawing_code_redraws_every_file(tmp_path, monkeypatch):
    folder = demo_faces.make_demo_dataset(tmp_path, n_images=6)
    before = file_identities(folder)
    monkeypatch.setattr(demo_faces, "DRAWING_VERSION", demo_faces.DRAWING_VERSION + 1)
    demo_faces.make_demo_dataset(folder, n_images=6)
    after = file_identities(folder)
    assert all(after[name][0] != before[name][0] for name in before)
    assert marker(folder)["version"] == demo_faces.DRAWING_VERSION


def test_an_interrupted_set_is_completed_without_redrawing_good_files(tmp_path):
    folder = demo_faces.make_demo_dataset(tmp_path, n_images=20)
    original = file_bytes(folder)
    os.remove(os.path.join(folder, demo_faces.MARKER_NAME))
    for index in (2, 5, 11, 19):
        os.remove(os.path.join(folder, "face_%05d.png" % index))
    truncated = Path(folder) / "face_00007.png"
    truncated.write_bytes(original["face_00007.png"][:100])
    untouched = {name: identity for name, identity in file_identities(folder).items()
                 if name != truncated.name}

    demo_faces.make_demo_dataset(folder, n_images=20)

    assert file_bytes(folder) == original
    assert all(file_identities(folder)[name] == identity for name, identity in untouched.items())
    assert marker(folder)["n_images"] == 20


def test_a_smaller_set_removes_the_surplus_files(tmp_path):
    demo_faces.make_demo_dataset(tmp_path, n_images=12)
    demo_faces.make_demo_dataset(tmp_path, n_images=5)
    assert [p.name for p in face_files(tmp_path)] == ["face_%05d.png" % i for i in range(5)]


def test_an_unknown_view_is_refused():
    params = demo_faces.random_face_params(np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown view 'back'"):
        demo_faces.draw_face(params, view="back")


def test_the_command_line_draws_the_set(tmp_path, capsys):
    out = tmp_path / "cli"
    demo_faces.main(["--out", str(out), "--n_images", "3", "--size", "32", "--seed", "5"])
    assert capsys.readouterr().out.strip() == str(out)
    assert len(face_files(out)) == 3
    assert marker(out) == {"n_images": 3, "size": 32, "seed": 5,
                           "version": demo_faces.DRAWING_VERSION}


# ----------------------------------------------------------------------------------------------
# The side view, for the pix2pix stage
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def side_views(drawn_faces):
    """The 50 faces of drawn_faces in profile, at 64 px."""
    return [(params, np.asarray(demo_faces.draw_face(params, 64, "side"), dtype=float))
            for params, _ in drawn_faces]


def background_at(params, row, size=64):
    """The background colour of an image row: the vertical gradient of the params."""
    top, bottom = np.array(params.background_top), np.array(params.background_bottom)
    return top + (bottom - top) * (row + 0.5) / size


def test_the_side_view_faces_right(side_views):
    behind_is_skin = []
    for params, image in side_views:
        tip = 0.1 + 0.6 * params.nose_length
        nose = pixel_at(params, demo_faces.PROFILE_FRONT + 0.3 * tip, params.nose_v - 0.08)
        assert np.abs(image[nose] - params.skin).max() <= 6
        row, col = pixel_at(params, demo_faces.PROFILE_FRONT + tip + 0.25, params.nose_v)
        assert np.abs(image[row, col] - background_at(params, row)).max() <= 6
        # The chin is on the right; mirrored about the face, the same place is behind the neck.
        assert np.abs(image[pixel_at(params, 0.6, 0.82)] - params.skin).max() <= 6
        behind = image[pixel_at(params, -0.75, 0.82)]
        behind_is_skin.append(np.abs(behind - params.skin).max() <= 6)
    assert np.mean(behind_is_skin) < 0.1


def test_the_side_view_is_the_same_person(side_views):
    for params, image in side_views:
        cheek = image[pixel_at(params, 0.45, 0.15)]
        assert np.abs(cheek - params.skin).max() <= 6
        crown = image[pixel_at(params, -0.3, -0.8)]
        scalp = params.skin if params.hair_style == "bald" else params.hair_color
        assert np.abs(crown - scalp).max() <= 6
        eye_row, eye_col = pixel_at(params, demo_faces.PROFILE_FRONT - 0.15, params.eye_v)
        luma = image @ LUMA
        assert luma[eye_row - 2:eye_row + 3, eye_col - 2:eye_col + 3].min() < cheek @ LUMA - 10


def test_front_and_side_share_the_background_and_differ_in_the_face(drawn_faces, side_views):
    differences = []
    for (params, front), (_, side) in zip(drawn_faces, side_views):
        if params.hair_style != "afro":  # an afro may reach the corners
            assert np.abs(front[:3, :3] - side[:3, :3]).max() <= 2
            assert np.abs(front[:3, -3:] - side[:3, -3:]).max() <= 2
        differences.append(np.abs(front[16:48, 16:48] - side[16:48, 16:48]).mean())
    assert min(differences) > 3 and np.mean(differences) > 15


def test_pairs_are_the_demo_faces_and_their_profiles(tmp_path):
    folder = Path(demo_faces.make_demo_pairs(tmp_path / "pairs", n_pairs=4, size=32, seed=2))
    front, side = file_bytes(folder / "front"), file_bytes(folder / "side")
    assert sorted(front) == sorted(side) == ["face_%05d.png" % i for i in range(4)]
    assert front == file_bytes(demo_faces.make_demo_dataset(tmp_path / "plain", 4, 32, seed=2))
    for i, name in enumerate(sorted(side)):
        params = demo_faces.random_face_params(np.random.default_rng([2, i]))
        with Image.open(folder / "side" / name) as image:
            assert np.array_equal(np.asarray(image),
                                  np.asarray(demo_faces.draw_face(params, 32, "side")))
    assert marker(folder / "side") == {"n_images": 4, "size": 32, "seed": 2,
                                       "version": demo_faces.DRAWING_VERSION, "view": "side"}


def test_an_interrupted_pair_set_is_completed(tmp_path):
    folder = Path(demo_faces.make_demo_pairs(tmp_path, n_pairs=6, size=16))
    original = {view: file_bytes(folder / view) for view in ("front", "side")}
    os.remove(folder / "side" / demo_faces.MARKER_NAME)
    os.remove(folder / "side" / "face_00003.png")
    front_files = file_identities(folder / "front")
    demo_faces.make_demo_pairs(tmp_path, n_pairs=6, size=16)
    assert {view: file_bytes(folder / view) for view in ("front", "side")} == original
    assert file_identities(folder / "front") == front_files  # untouched


def test_the_command_line_draws_pairs(tmp_path, capsys):
    demo_faces.main(["--out", str(tmp_path), "--n_images", "2", "--size", "16", "--pairs"])
    assert capsys.readouterr().out.strip() == str(tmp_path)
    assert [len(face_files(tmp_path / view)) for view in ("front", "side")] == [2, 2]
