"""Parts 1 and 5: using the trained model (generation, latent walk, progress GIF, completion,
the "Real or Fake?" quiz), on a tiny real checkpoint."""
import csv
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

from conftest import MODEL_EPOCHS, assert_refused, checkpoint_steps, run_trainer, write_images
from gantut_complete import Completion, CompletionError, make_mask, read_images
from gantut_gan import DCGAN
from gantut_quiz import write_quiz


def pixels(path):
    with Image.open(path) as img:
        return np.asarray(img).astype(int)


def test_progress_gif_has_one_labelled_frame_per_epoch(trained_model):
    with Image.open(trained_model.folder / "samples" / "progress.gif") as gif:
        assert gif.n_frames == MODEL_EPOCHS
        assert gif.size == (8 * 16, 8 * 16)


def test_generation_is_repeatable_under_a_seed_and_differs_across_seeds(model_copy):
    grids = {}
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        result = run_trainer(str(model_copy), "--train=False", "--seed", seed, "--n_samples",
                             "16", "--generated_dir", "gen_" + name, "--save_single")
        assert result.returncode == 0, result.stderr[-3000:]
        grids[name] = pixels(model_copy / ("gen_" + name) / "samples.png")
        singles = sorted(os.listdir(model_copy / ("gen_" + name)))
        assert singles.count("samples.png") == 1 and len(singles) == 17
    assert grids["a"].shape == (4 * 16, 4 * 16, 3)  # size flags come from model.json
    assert np.array_equal(grids["a"], grids["b"])
    assert not np.array_equal(grids["a"], grids["c"])


def test_interpolation_rows_change_smoothly(model_copy):
    result = run_trainer(str(model_copy), "--train=False", "--interpolate", "--seed", "1",
                         "--generated_dir", "walk")
    assert result.returncode == 0, result.stderr[-3000:]
    grid = pixels(model_copy / "walk" / "interpolation.png").reshape(8, 16, 8, 16, 3)
    neighbours = np.abs(np.diff(grid, axis=2)).mean()
    ends = np.abs(grid[:, :, -1] - grid[:, :, 0]).mean()
    assert neighbours < ends / 3


def test_no_checkpoint_says_where_it_looked(tmp_path):
    result = run_trainer(str(tmp_path), "--train=False", "--checkpoint_dir", "nowhere")
    assert result.returncode != 0
    assert "no checkpoint in nowhere" in result.stderr


@pytest.mark.parametrize("kind,missing", [("center", 0.25), ("left", 0.5), ("random", 0.2),
                                          ("grid", 15 / 16)])
def test_mask_types_hide_the_documented_share(kind, missing):
    mask = make_mask(kind, 64, seed=0)
    assert mask.shape == (64, 64, 1) and set(np.unique(mask)) == {0.0, 1.0}
    assert abs((1 - mask.mean()) - missing) < 0.02


def test_mask_image_must_match_the_model_size(tmp_path):
    Image.new("L", (16, 16), 255).save(tmp_path / "ok.png")
    Image.new("L", (20, 16), 255).save(tmp_path / "big.png")
    assert make_mask(str(tmp_path / "ok.png"), 16).min() == 1
    with pytest.raises(CompletionError, match="big.png is 20x16"):
        make_mask(str(tmp_path / "big.png"), 16)
    with pytest.raises(CompletionError, match="neither"):
        make_mask(str(tmp_path / "absent.png"), 16)


def test_images_of_another_size_are_refused(tmp_path):
    write_images(str(tmp_path), 2, 24)
    with pytest.raises(CompletionError, match="24x24.*trained on 16x16"):
        read_images(str(tmp_path / "*.png"), 16, 3, False, 64)
    _, images = read_images(str(tmp_path / "*.png"), 16, 3, True, 64)
    assert images.shape == (2, 16, 16, 3)


@pytest.mark.parametrize("kind", ["center", "left", "random", "grid"])
def test_completion_lowers_the_contextual_loss(sess, kind):
    tf.set_random_seed(1)
    dcgan = DCGAN(sess, image_size=16, batch_size=4, z_dim=8, gf_dim=4, df_dim=4)
    sess.run(tf.global_variables_initializer())
    # Targets the generator can reach: its own outputs for some hidden z.
    images = dcgan.generate(np.random.default_rng(0).uniform(-1, 1, [4, 8]))
    mask = make_mask(kind, 16, seed=0)
    generated, history = Completion(dcgan).complete(images, mask, n_iter=60, seed=1)
    assert history.shape == (61, 4)
    assert np.all(history[-1] < history[0] * 0.8)


def test_completion_command_writes_grids_and_keeps_known_pixels(model_copy):
    faces = str(model_copy / "faces" / "part1" / "*.png")  # its 16 PNG faces
    result = run_trainer(str(model_copy), "--complete", "--imgs", faces, "--mask", "left",
                         "--nIter", "60", "--seed", "0", "--completions_dir", "done")
    assert result.returncode == 0, result.stderr[-3000:]
    # Long work shows its rate and time left, ending at the full count.
    assert re.search(r"^completing 16 image\(s\): 61/61 iterations, [\d.]+ iterations/s, ETA ",
                     result.stderr, re.M), result.stderr[-2000:]
    out = model_copy / "done"
    names = set(os.listdir(out))
    assert {"before.png", "masked.png", "contextual_loss.csv"} <= names
    assert {"generated_%04d.png" % i for i in (0, 50, 60)} <= names
    before, blended = pixels(out / "before.png"), pixels(out / "blended_0060.png")
    known = np.tile(make_mask("left", 16)[:, :, 0], (4, 4)).astype(bool)
    assert np.abs(before[known] - blended[known]).max() <= 1  # rounding only
    assert np.abs(before[~known] - blended[~known]).mean() > 1  # the hole was filled in
    with open(out / "contextual_loss.csv") as table:
        rows = list(csv.DictReader(table))
    assert len(rows) == 16
    assert all(float(r["contextual_loss_after"]) <= float(r["contextual_loss_before"])
               for r in rows)


def test_quiz_command_writes_a_page_with_sixteen_faces(model_copy):
    result = run_trainer(str(model_copy), "--turing_quiz", "quiz.html", "--dataset", "faces",
                         "--seed", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    page = (model_copy / "quiz.html").read_text()
    assert page.count("data:image/png;base64,") == 16
    assert "http" not in page  # self-contained: works offline


def chromium():
    """A real headless Chromium driven by Selenium, or a skip/fail saying what to install."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        message = "needs Debian's chromium and chromium-driver (.ci/run installs them)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


@pytest.mark.parametrize("right_answers", [16, 5])
def test_quiz_page_scores_the_clicked_answers(tmp_path, right_answers):
    from selenium.webdriver.common.by import By
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    fake = rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    key = write_quiz(str(tmp_path / "quiz.html"), real, fake, seed=3)
    assert sorted(key) == ["fake"] * 8 + ["real"] * 8
    driver = chromium()
    try:
        driver.get((tmp_path / "quiz.html").as_uri())
        assert len(driver.find_elements(By.CSS_SELECTOR, ".face img")) == 16
        for i, truth in enumerate(key):
            wrong = "fake" if truth == "real" else "real"
            answer = truth if i < right_answers else wrong
            driver.find_element(By.CSS_SELECTOR,
                                'input[name="face%d"][value="%s"]' % (i, answer)).click()
        driver.find_element(By.ID, "submit").click()
        score = driver.find_element(By.ID, "score").text
        assert score == "You got %d of 16 right (%d%%)." % (right_answers,
                                                            round(100 * right_answers / 16))
        assert len(driver.find_elements(By.CSS_SELECTOR, ".face.right")) == right_answers
        assert "Turing test" in driver.find_element(By.ID, "result").text
    finally:
        driver.quit()


def test_completion_without_imgs_takes_the_datasets_png_images(model_copy):
    # --dataset faces holds 16 PNG faces in part1/ and 8 JPEG ones in part2/; --batch_size 4.
    # --outDir, B. Amos's name for --completions_dir, still works.
    result = run_trainer(str(model_copy), "--complete", "--dataset", "faces", "--nIter", "2",
                         "--batch_size", "4", "--outDir", "done")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "16 files match --imgs; completing the first 4" in result.stdout
    assert (model_copy / "done" / "before.png").exists()


def folder_state(folder):
    """{file name: (size, mtime)} of `folder`'s files."""
    return {entry.name: (entry.stat().st_size, entry.stat().st_mtime_ns)
            for entry in os.scandir(folder)}


def test_demo_faces_for_a_saved_model_are_drawn_at_its_size(model_copy, user_cache):
    # The model is 16x16; --image_size is left at 64: the demo faces follow model.json.
    before = folder_state(model_copy / "checkpoint")
    result = run_trainer(str(model_copy), "--train=False", "--evaluate", "--dataset", "demo",
                         "--demo_images", "60", "--holdout", "0.2", "--eval_samples", "8")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (model_copy / "data" / "demo_16px").is_dir()
    assert not (model_copy / "data" / "demo_64px").exists()
    # Using a model writes nothing beside it: the decoded images go to the user's cache.
    assert folder_state(model_copy / "checkpoint") == before
    assert list(user_cache.glob("images_16px_3ch_*.npy"))


def test_export_writes_the_weights_alone_and_the_export_is_used_like_the_run(model_copy):
    source = model_copy / "checkpoint"
    before = folder_state(source)
    result = run_trainer(str(model_copy), "--train=False", "--export", "shared")
    assert result.returncode == 0, result.stderr[-3000:]
    assert folder_state(source) == before
    step = checkpoint_steps(str(source))[-1]
    exported = str(model_copy / "shared" / ("DCGAN.model-%d" % step))
    assert "exported %s" % os.path.join("shared", "DCGAN.model-%d" % step) in result.stdout
    names = dict(tf.train.list_variables(exported))
    # The model's variables and its fixed sample noise; no Adam state, no training position.
    assert any(name.startswith("generator/") for name in names)
    assert not [name for name in names if "adam" in name.lower() or "power" in name]
    assert [name for name in names if name.startswith("state/")] == ["state/sample_z"]
    newest = str(source / ("DCGAN.model-%d" % step))
    for name in names:
        np.testing.assert_array_equal(tf.train.load_variable(exported, name),
                                      tf.train.load_variable(newest, name))
    # TensorFlow's own list names the checkpoint relative to its folder, so the folder can move.
    assert '"DCGAN.model-%d"' % step in (model_copy / "shared" / "checkpoint").read_text()
    assert (model_copy / "shared" / "model.json").read_text() == \
        (source / "model.json").read_text()
    for folder in ("checkpoint", "shared"):
        made = run_trainer(str(model_copy), "--train=False", "--checkpoint_dir", folder,
                           "--generated_dir", "from_" + folder, "--seed", "3")
        assert made.returncode == 0, made.stderr[-2000:]
    np.testing.assert_array_equal(pixels(model_copy / "from_shared" / "samples.png"),
                                  pixels(model_copy / "from_checkpoint" / "samples.png"))
    again = run_trainer(str(model_copy), "--train=False", "--export", "shared")
    assert_refused(again, "error: --export shared already holds a model")


def test_a_damaged_newest_checkpoint_is_named_and_the_one_before_it_is_used(model_copy):
    source = model_copy / "checkpoint"
    *_, before, newest = checkpoint_steps(str(source))
    data = source / ("DCGAN.model-%d.data-00000-of-00001" % newest)
    data.write_bytes(data.read_bytes()[:100])  # cut short, as by a full disk
    result = run_trainer(str(model_copy), "--train=False", "--export", "shared")
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("checkpoint %s is damaged (Read less bytes than requested)"
            % os.path.join("checkpoint", "DCGAN.model-%d" % newest)) in result.stderr
    exported = str(model_copy / "shared" / ("DCGAN.model-%d" % before))
    assert checkpoint_steps(str(model_copy / "shared")) == [before]
    name = "generator/g_h0_lin/Matrix"
    np.testing.assert_array_equal(
        tf.train.load_variable(exported, name),
        tf.train.load_variable(str(source / ("DCGAN.model-%d" % before)), name))


def test_saving_a_loaded_model_elsewhere_retires_nothing_where_it_came_from(tmp_path):
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    with tf.Graph().as_default(), tf.Session() as sess:
        dcgan = DCGAN(sess, image_size=16, z_dim=8, gf_dim=4, df_dim=4)
        sess.run(tf.global_variables_initializer())
        for step in range(6):  # the Saver keeps 5
            dcgan.save(first, step)
    with tf.Graph().as_default(), tf.Session() as sess:
        dcgan = DCGAN(sess, image_size=16, z_dim=8, gf_dim=4, df_dim=4)
        assert dcgan.load(first)
        dcgan.save(second, 9)
    assert checkpoint_steps(first) == [1, 2, 3, 4, 5]
    assert checkpoint_steps(second) == [9]
