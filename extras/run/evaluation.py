"""Quality figures in the background (ours): the training loop hands an epoch's generated images
to a process of its own and goes on training; the figures are logged when they are ready.

The process is started at the first hand-over and serves the whole run, so dlib's and the
descriptor network's models load once and the real set's figures are computed once. It never
opens a GPU (it computes on the CPU's spare cores, one thread), and it finishes the figures under way when
Ctrl-C or SIGTERM stops the run: the run waits for them before it returns.
"""
import concurrent.futures
import contextlib
import multiprocessing
import os
import signal

from extras.utils import done_in_order

# The evaluation process computes with one thread each in numpy's BLAS and in TensorFlow: it
# shares the cores with training, and threads there cost CPU time for little wall time (the
# sliced Wasserstein distance took 7.96 CPU-s on two BLAS threads, 5.93 on one).
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


class BackgroundEvaluation(object):
    """`submit(epoch, step, generated, real)` (uint8 images) starts extras.run.metrics.evaluate
    in the background; `finished(wait)` returns (epoch, step, figures) of those done (all of
    them, waiting, with `wait`), in submission order; `close()` waits for none."""

    def __init__(self):
        self.pool, self.pending = None, []

    def submit(self, epoch, step, generated, real, seed=0):
        if self.pool is None:
            # spawn: a fresh interpreter, not a fork of one holding a Session and its threads.
            self.pool = concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"), initializer=worker_setup)
        with environment(ONE_THREAD):  # what the process starts with, at its first task
            self.pending.append((epoch, step, self.pool.submit(evaluate, generated, real, seed)))

    def finished(self, wait=False):
        return [(epoch, step, figures.result()) for epoch, step, figures in
                done_in_order(self.pending, wait, lambda item: item[2])]

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None


@contextlib.contextmanager
def environment(variables):
    """The block runs with `variables` set in os.environ, which a process started in it
    inherits; the values before are put back after."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def worker_setup():
    """The evaluation process: CPU only, and deaf to the signals that ask the run to stop (the
    run waits for the figures under way; a killed run's process ends with its pipe)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def evaluate(generated, real, seed):
    """extras.run.metrics.evaluate, imported in the evaluation process alone (dlib, OpenCV and
    the descriptor network load there)."""
    import extras.run.metrics
    return extras.run.metrics.evaluate(generated, real, seed)
