"""This machine's CPU (ours): what Linux says of it, and the per-machine choices of bfloat16 and
fused batch norm that follow (bench/LEVERS.md has the figures per CPU kind)."""
from extras.machine.device import gpu_visible


def cpu_info(key):
    """The first value of `key` ("flags", "model name") in /proc/cpuinfo; "" where Linux does
    not say."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:
        pass
    return ""


def cpu_flags():
    """The CPU's feature flags as Linux reports them (empty where it does not)."""
    return set(cpu_info("flags").split())


# The CPU flags of native bfloat16 arithmetic, as Linux names them.
BF16_INSTRUCTIONS = {"avx512_bf16", "amx_bf16"}


def cpu_has_bf16():
    """True if this CPU computes in bfloat16 natively (AVX512-BF16 or AMX)."""
    return bool(BF16_INSTRUCTIONS & cpu_flags())


def bf16_wins():
    """Whether oneDNN's bfloat16 rewrite is the faster choice here: on a CPU with bfloat16
    instructions, and not where a GPU runs the graph (the rewrite is for the CPU's kernels)."""
    return cpu_has_bf16() and not gpu_visible()


def fused_batch_norm_wins():
    """Whether batch norm's fused kernel is the faster choice here: on a GPU and on CPUs with
    bfloat16 instructions; not on AVX2 alone (bench/LEVERS.md has the figures per CPU kind)."""
    return cpu_has_bf16() or gpu_visible()
