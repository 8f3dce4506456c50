"""bench/train_throughput.py --profile's breakdown, on hand-made step stats (no training)."""
import os
import sys

from tensorflow.core.framework import step_stats_pb2

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "bench"))
import train_throughput  # noqa: E402


def step_stats(*nodes):
    stats = step_stats_pb2.StepStats()
    device = stats.dev_stats.add(device="/job:localhost/replica:0/task:0/device:CPU:0")
    for name, kind, micros in nodes:
        node = device.node_stats.add(node_name=name, all_end_rel_micros=micros)
        node.timeline_label = "%s = %s(a, b)" % (name, kind)
    return stats


def test_op_types_without_onednn_prefixes_count_as_convolution():
    for kind in ("Conv2D", "_MklConv2D", "_MklNativeConv2DBackpropInput", "_OneDnnConv2D",
                 "_MklNativeConv2DBackpropFilter", "_FusedConv2D", "_MklFusedConv2D"):
        assert train_throughput.is_convolution(kind), kind
    for kind in ("BiasAdd", "_MklNativeFusedBatchNormV3", "ResourceApplyAdam", "Maximum"):
        assert not train_throughput.is_convolution(kind), kind


def test_report_shares_and_ranks_ops():
    traces = [step_stats(("d/conv", "_MklNativeConv2D", 600), ("d/bias", "BiasAdd", 100)),
              step_stats(("g/deconv", "Conv2DBackpropInput", 200), ("d/bias", "BiasAdd", 100),
                         ("_SOURCE", "NoOp", 50))]
    report = train_throughput.profile_report(traces, wall_seconds=0.5, top=5).splitlines()
    assert report[0].startswith("one training step (2 sess.run calls), wall 500.0 ms, "
                                "op time 1.0 ms")
    assert report[1].startswith("convolution share of op time: 80.0%")
    types = report[report.index("top op types by time:") + 2:]
    assert types[0].split()[-2:] == ["_MklNativeConv2D", "[conv]"]
    assert types[1].split()[1:4] == ["20.0%", "2", "BiasAdd"]


def test_device_line_names_the_cpu_and_gpu():
    line = train_throughput.device_line()
    assert line.startswith("device: cpu=") and "bf16 instructions:" in line and "tf_gpu=" in line


def test_placement_shares_op_time_by_device_without_gpu_streams():
    cpu = step_stats(("d/conv", "Conv2D", 100), ("_SOURCE", "NoOp", 5))
    gpu = step_stats(("g/deconv", "Conv2DBackpropInput", 300), ("g/bias", "BiasAdd", 100))
    gpu.dev_stats[0].device = "/job:localhost/replica:0/task:0/device:GPU:0"
    stream = gpu.dev_stats.add(device="/device:GPU:0/stream:all")
    stream.node_stats.add(node_name="g/deconv", all_end_rel_micros=300)
    assert train_throughput.placement_line([cpu, gpu]) == \
        "placement: GPU:0 2 ops (80.0% of op time), CPU:0 1 ops (20.0% of op time)"


def test_step_ops_count_each_op_once_across_devices_and_streams():
    cpu = step_stats(("d/conv", "Conv2D", 100), ("_SOURCE", "NoOp", 5), ("_SINK", "NoOp", 1))
    gpu = step_stats(("g/deconv", "Conv2DBackpropInput", 300), ("g/bias", "BiasAdd", 100))
    gpu.dev_stats[0].device = "/job:localhost/replica:0/task:0/device:GPU:0"
    gpu.dev_stats.add(device="/device:GPU:0/stream:all").node_stats.add(node_name="g/deconv")
    assert {name: count for name, (count, _) in
            train_throughput.ops_by_device([cpu, gpu]).items()} == {"CPU:0": 1, "GPU:0": 2}
