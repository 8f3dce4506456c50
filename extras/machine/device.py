"""Which device trains, said at start (ours): the trainers' --device auto|gpu|cpu, the start-up
line naming the device, and a warning where nvidia-smi lists a GPU that TensorFlow cannot use,
so that a GPU job never trains on the CPU without a word."""
import extras.machine.tfenv  # noqa: F401  (first: TensorFlow then loads without Keras; see it)

import os
import subprocess

import tensorflow.compat.v1 as tf

DEVICES = ("auto", "gpu", "cpu")


def gpu_visible():
    """True if TensorFlow sees a GPU that --device left visible."""
    return bool(tf.config.get_visible_devices("GPU"))


def nvidia_smi_listing():
    """What `nvidia-smi -L` prints (one `GPU i: NAME (UUID: ...)` line per GPU); "" where there
    is no nvidia-smi or it fails (no driver)."""
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                              timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def usable_gpus(listing, cuda_visible_devices):
    """The lines of an `nvidia-smi -L` `listing` for the GPUs a process may use under
    CUDA_VISIBLE_DEVICES (None: all), which holds indices or UUIDs; as CUDA does, an entry that
    names no GPU hides it and every entry after it."""
    gpus = [line.strip() for line in listing.splitlines() if line.startswith("GPU ")]
    if cuda_visible_devices is None:
        return gpus
    chosen = []
    for entry in (part.strip() for part in cuda_visible_devices.split(",")):
        if entry.isdigit() and int(entry) < len(gpus):
            chosen.append(gpus[int(entry)])
        elif entry.startswith(("GPU-", "MIG-")) and any(entry in gpu for gpu in gpus):
            chosen.append(next(gpu for gpu in gpus if entry in gpu))
        else:
            break
    return chosen


def fallback_warning(listed, tf_gpus, device):
    """The `warning:` line for GPUs that nvidia-smi lists (`listed`) and TensorFlow does not see
    (`tf_gpus` empty), unless --device is cpu; None where all is as asked."""
    if device == "cpu" or tf_gpus or not listed:
        return None
    return ("warning: nvidia-smi lists %d GPU(s) this process may use (%s), but TensorFlow sees "
            "none, so training runs on the CPU. Install TensorFlow's CUDA libraries (pip install "
            "-r requirements-gpu.txt), or pass --device cpu to train on the CPU on purpose."
            % (len(listed), listed[0].split(" (UUID")[0]))


def describe(gpu):
    """`GPU:0 NAME (compute 9.0)` for a TensorFlow PhysicalDevice."""
    details = tf.config.experimental.get_device_details(gpu)
    capability = details.get("compute_capability")
    return "%s %s%s" % (gpu.name.replace("/physical_device:", ""),
                        details.get("device_name", "GPU"),
                        " (compute %d.%d)" % capability if capability else "")


def choose_device(device):
    """Apply --device before any Session: return the start-up line naming the device, and the
    fallback warning or None. `gpu` without a visible GPU stops with a one-line error; `cpu`
    hides the GPUs from TensorFlow."""
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise SystemExit("error: --device gpu, but TensorFlow sees no GPU (nvidia-smi lists %d). "
                         "Install TensorFlow's CUDA libraries (pip install -r "
                         "requirements-gpu.txt), or use --device auto or cpu."
                         % len(usable_gpus(nvidia_smi_listing(), None)))
    if device == "cpu" and gpus:
        tf.config.set_visible_devices([], "GPU")
        return " [*] device: CPU (--device cpu; %d GPU(s) hidden)" % len(gpus), None
    if gpus:
        return " [*] device: " + ", ".join(describe(gpu) for gpu in gpus), None
    listed = usable_gpus(nvidia_smi_listing(), os.environ.get("CUDA_VISIBLE_DEVICES"))
    return " [*] device: CPU (TensorFlow sees no GPU)", fallback_warning(listed, gpus, device)
