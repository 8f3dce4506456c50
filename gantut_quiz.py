"""The "Real or Fake?" quiz of Part 5 of "Generative Adversarial Network (GAN) in TensorFlow":
one self-contained HTML page of sixteen faces, eight real and eight generated, in a random
order, which the reader marks and submits to see the score and the answer key.

    ./gantut_trainer.py --turing_quiz quiz.html --dataset aligned
"""
import base64
import html
import io

import numpy as np
from PIL import Image

from extras.utils import atomic_path

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Real or Fake?</title>
<style>
body {{ font-family: sans-serif; max-width: 46em; margin: 2em auto; padding: 0 1em; }}
.faces {{ display: grid; grid-template-columns: repeat(4, 1fr); gap: 1em; }}
.face {{ border: 3px solid #ddd; border-radius: 6px; padding: 0.5em; text-align: center; }}
.face img {{ width: 128px; height: 128px; }}
.face.right {{ border-color: #2a2; }}
.face.wrong {{ border-color: #c22; }}
.answer {{ font-weight: bold; min-height: 1.2em; }}
#result {{ font-size: 1.3em; margin: 1em 0; }}
</style>
</head>
<body>
<h1>Real or Fake?</h1>
<p>Eight of these faces are real: images from the set the GAN was trained on. Eight were drawn
by its generator.
Mark each one, then press Submit.</p>
<div class="faces">
{cards}
</div>
<p><button id="submit" type="button">Submit</button></p>
<div id="result" hidden>
<p id="score"></p>
<p>If you scored 50% or less, you could not tell the generator's faces from real ones any better
than by tossing a coin: the generator has passed this simple Turing test.</p>
</div>
<script>
const key = {key};
document.getElementById("submit").addEventListener("click", function () {{
  let right = 0;
  key.forEach(function (truth, i) {{
    const picked = document.querySelector('input[name="face' + i + '"]:checked');
    const correct = picked !== null && picked.value === truth;
    if (correct) right += 1;
    const card = document.getElementById("face" + i);
    card.classList.add(correct ? "right" : "wrong");
    card.querySelector(".answer").textContent = truth === "real" ? "Real" : "Fake (generated)";
  }});
  const percent = Math.round(100 * right / key.length);
  document.getElementById("score").textContent =
    "You got " + right + " of " + key.length + " right (" + percent + "%).";
  document.getElementById("result").hidden = false;
}});
</script>
</body>
</html>
"""

CARD = """<div class="face" id="face{i}">
<img src="data:image/png;base64,{png}" alt="face {number}">
<div><label><input type="radio" name="face{i}" value="real"> Real</label>
<label><input type="radio" name="face{i}" value="fake"> Fake</label></div>
<div class="answer"></div>
</div>"""


def png_base64(image):
    """A uint8 H x W x C image as base64 PNG text, for an inline <img> (Part 5 helper)."""
    buffer = io.BytesIO()
    Image.fromarray(image[:, :, 0] if image.shape[-1] == 1 else image).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def quiz_page(real, fake, seed=None):
    """(html, answer key) of the quiz page for uint8 batches `real` and `fake`, shuffled from
    `seed`; the key lists "real"/"fake" for each face in page order."""
    faces = [(image, "real") for image in real] + [(image, "fake") for image in fake]
    order = np.random.default_rng(seed).permutation(len(faces))
    cards, key = [], []
    for i, index in enumerate(order):
        image, truth = faces[index]
        cards.append(CARD.format(i=i, number=i + 1, png=png_base64(image)))
        key.append(truth)
    page = PAGE.format(cards="\n".join(cards), key="[%s]" % ", ".join(
        '"%s"' % html.escape(truth) for truth in key))
    return page, key


def write_quiz(path, real, fake, seed=None):
    """Write the quiz page to `path` (whole or not at all); return the answer key (Part 5)."""
    page, key = quiz_page(real, fake, seed)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        out.write(page)
    return key
