#!/usr/bin/env bash
# Run a command (the trainer) as the main process of a SLURM batch job that comes back after
# a stop: train_gpu.sbatch and train_cpu.sbatch `exec` this as
#   jobs/resumable.sh PYTHON gantut_trainer.py FLAGS...
#
# - SIGUSR1, which the scripts ask Slurm to send to this shell (--signal=B:USR1@120) two
#   minutes before the time limit: passed on to the trainer as SIGTERM, so it saves a
#   checkpoint after the step under way and exits 0; then this requeues the job, which starts
#   again with the same command and resumes from that checkpoint.
# - SIGTERM, which Slurm sends to every process of the job (scancel, scontrol requeue,
#   preemption): the trainer gets its own copy and checkpoints; this shell only waits for it,
#   since Slurm kills what is left of a job once its batch shell is gone. (Passing SIGTERM on
#   as well would be a second signal, which stops the trainer at once.) Slurm itself requeues
#   a job that was requeued or preempted; a cancelled one stays cancelled.
# The exit status is the trainer's: 0 when it finished or stopped cleanly, non-zero on error.
set -euo pipefail

child=""
requeue=""
pass_on_usr1() {
    echo " [*] $(date '+%F %T') SIGUSR1 (time limit near): stopping the trainer, then requeueing"
    requeue=yes
    kill -TERM "$child" 2>/dev/null || true  # it may have just exited
}
# Before the trainer starts, so no signal can find this shell without its handler.
trap pass_on_usr1 USR1
trap 'echo " [*] $(date "+%F %T") SIGTERM: waiting for the trainer to save a checkpoint"' TERM

"$@" &
child=$!
# A handled signal ends `wait` early; wait again until the trainer itself has exited.
while true; do
    status=0
    wait "$child" || status=$?
    kill -0 "$child" 2>/dev/null || break
done

if [[ $status -eq 0 && -n $requeue ]]; then
    echo " [*] requeueing job $SLURM_JOB_ID; it resumes from the checkpoint"
    scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
