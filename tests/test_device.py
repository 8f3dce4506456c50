"""Which device trains (extras/machine/device.py): the GPUs a process may use, the warning when
TensorFlow cannot use them, and --device on this CPU machine."""
import pytest

from extras.machine.device import choose_device, fallback_warning, usable_gpus

LISTING = ("GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1111aaaa-0000-0000-0000-000000000000)\n"
           "GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-2222bbbb-0000-0000-0000-000000000000)\n")


@pytest.mark.parametrize("visible, expected", [
    (None, [0, 1]), ("1", [1]), ("1,0", [1, 0]), ("", []), ("-1", []), ("0,5,1", [0]),
    ("GPU-2222bbbb", [1]), ("GPU-9999", [])])
def test_the_usable_gpus_follow_cuda_visible_devices(visible, expected):
    gpus = LISTING.splitlines()
    assert usable_gpus(LISTING, visible) == [gpus[index] for index in expected]


def test_no_nvidia_smi_output_means_no_gpu():
    assert usable_gpus("", None) == []
    assert usable_gpus("No devices were found\n", None) == []


def test_a_gpu_tensorflow_cannot_use_is_warned_of_unless_the_cpu_was_asked_for():
    listed = usable_gpus(LISTING, None)
    warning = fallback_warning(listed, [], "auto")
    assert warning.startswith("warning: nvidia-smi lists 2 GPU(s)")
    assert "GPU 0: NVIDIA A100-SXM4-40GB" in warning and "requirements-gpu.txt" in warning
    assert "\n" not in warning
    assert fallback_warning(listed, [], "cpu") is None
    assert fallback_warning(listed, ["/physical_device:GPU:0"], "auto") is None
    assert fallback_warning([], [], "auto") is None


def test_on_a_machine_without_a_gpu_the_cpu_is_named_and_gpu_is_refused():
    assert choose_device("auto") == (" [*] device: CPU (TensorFlow sees no GPU)", None)
    with pytest.raises(SystemExit, match=r"^error: --device gpu, but TensorFlow sees no GPU"):
        choose_device("gpu")


def test_device_gpu_without_a_gpu_stops_the_trainer_in_one_line_before_making_anything(tmp_path):
    from conftest import assert_refused, run_trainer
    result = run_trainer(str(tmp_path), "--device", "gpu", "--dataset", "demo")
    assert_refused(result, "error: --device gpu, but TensorFlow sees no GPU")
    assert not list(tmp_path.iterdir())
