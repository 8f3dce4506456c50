"""A real one-node SLURM cluster on localhost for the tests of jobs/ (project addition):
munged, slurmctld and slurmd from Debian's `munge` and `slurm-wlm` packages, with
every key, socket, state folder, log and port of their own in one temp folder, so they touch
nothing of the machine's own setup and nothing of another run's.
"""
import datetime
import os
import re
import shutil
import socket
import subprocess
import time


def free_port():
    """A TCP port nobody listens on now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_line(host):
    """slurm.conf's NodeName line with this machine's real CPUs and memory (`slurmd -C`)."""
    found = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    line = next(line for line in found.splitlines() if line.startswith("NodeName="))
    return re.sub(r"^NodeName=\S+", "NodeName=%s NodeAddr=127.0.0.1" % host, line)


SLURM_CONF = """\
ClusterName=gantut
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={dir}/munge.socket
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
# No cgroups in a container: processes are tracked by parent pid, and tasks are not pinned.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SwitchType=switch/none
# No slurmdbd: the tests read a finished job's state from `scontrol show job`.
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={dir}/jobcomp.txt
# Finished jobs stay visible to `scontrol show job` for 10 minutes.
MinJobAge=600
ReturnToService=2
# A signalled job gets this long between SIGTERM and SIGKILL.
KillWait=30
SchedulerParameters=sched_interval=1
{node}
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


# The states of a job that has ended (and will not run again unless requeued).
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
         "PREEMPTED", "BOOT_FAIL", "DEADLINE"}
# How long start_requeued lets a requeued job wait (Slurm's own hold is about 2 minutes).
HOLD = datetime.timedelta(seconds=10)


class Cluster:
    """The daemons of a one-node cluster in `folder`; `env` points slurm commands at it."""

    def __init__(self, folder):
        self.dir = str(folder)
        self.conf = os.path.join(self.dir, "slurm.conf")
        self.env = dict(os.environ, SLURM_CONF=self.conf)
        self.daemons = []

    def start(self, timeout=60):
        """Start munged, slurmctld and slurmd; return None when the node is idle, else why not."""
        missing = [name for name in ("mungekey", "munged", "slurmctld", "slurmd", "sbatch")
                   if not shutil.which(name)]
        if missing:
            return "not installed: %s (apt-get install slurm-wlm munge)" % ", ".join(missing)
        for name in ("state", "spool"):
            os.makedirs(os.path.join(self.dir, name))
        host = socket.gethostname().split(".")[0]
        with open(self.conf, "w") as conf:
            conf.write(SLURM_CONF.format(host=host, dir=self.dir, ctld_port=free_port(),
                                         slurmd_port=free_port(), node=node_line(host)))
        key = os.path.join(self.dir, "munge.key")
        subprocess.run(["mungekey", "--create", "--keyfile", key], check=True)
        self.launch("munged", ["munged", "--foreground", "--force", "--key-file", key,
                               "--socket", self.path("munge.socket"),
                               "--pid-file", self.path("munged.pid"),
                               "--seed-file", self.path("munged.seed"),
                               "--log-file", self.path("munged.log")])
        self.launch("slurmctld", ["slurmctld", "-D", "-i", "-f", self.conf])
        self.launch("slurmd", ["slurmd", "-D", "-f", self.conf])
        return self.wait_idle(timeout)

    def path(self, name):
        return os.path.join(self.dir, name)

    def launch(self, name, command):
        output = open(self.path(name + ".out"), "w")
        self.daemons.append((name, subprocess.Popen(command, stdout=output,
                                                    stderr=subprocess.STDOUT, env=self.env)))

    def wait_idle(self, timeout):
        """None once sinfo shows the node idle; else the reason, with the daemons' log tails."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [name for name, proc in self.daemons if proc.poll() is not None]
            if dead:
                return "%s exited at start-up\n%s" % (", ".join(dead), self.log_tails())
            state = self.run("sinfo", "--noheader", "--format=%T").stdout.strip()
            if state == "idle":
                return None
            time.sleep(0.5)
        return "the node was not idle after %d s\n%s" % (timeout, self.log_tails())

    def log_tails(self, lines=15):
        tails = []
        for name, _ in self.daemons:
            for log in (name + ".out", name + ".log"):
                if os.path.exists(self.path(log)):
                    with open(self.path(log), errors="replace") as file:
                        tail = file.read().splitlines()[-lines:]
                    tails.append("--- %s:\n%s" % (log, "\n".join(tail)))
        return "\n".join(tails)

    def stop(self):
        """Cancel this cluster's jobs (their processes are not the daemons' children), then
        stop the daemons it started, by their pids, newest first."""
        try:
            if self.daemons and all(proc.poll() is None for _, proc in self.daemons):
                self.run("scancel", "--full", "--user=root")
                self.wait_for(lambda: not self.run("squeue", "--noheader").stdout.strip(),
                              "the jobs to end", timeout=40)
        finally:
            for _, proc in reversed(self.daemons):
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def run(self, *command, env=None, **kwargs):
        """A slurm command against this cluster (CompletedProcess, text output)."""
        return subprocess.run(list(command), capture_output=True, text=True,
                              env=dict(self.env, **(env or {})), timeout=30, **kwargs)

    def sbatch(self, *args, env=None, cwd=None):
        """Submit a batch job from folder `cwd` (its SLURM_SUBMIT_DIR); return its id."""
        result = self.run("sbatch", "--parsable", *args, env=env, cwd=cwd)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().split(";")[0]

    def jobs(self, job_id):
        """`scontrol show job`'s fields of the job, one dict per array task (one for a job)."""
        shown = self.run("scontrol", "--oneliner", "show", "job", job_id).stdout
        return [dict(field.split("=", 1) for field in line.split() if "=" in field)
                for line in shown.splitlines() if line.strip()]

    def wait_ended(self, job_id, timeout=90):
        """Wait until the job (every task of an array) has ended; return jobs(job_id)."""
        def ended():
            jobs = self.jobs(job_id)
            return jobs if jobs and all(job["JobState"] in ENDED for job in jobs) else None
        return self.wait_for(ended, "job %s to end" % job_id, timeout)

    def start_requeued(self, job_id, restarts, timeout=90):
        """Wait until the job runs again after its `restarts`-th requeue, starting it within
        seconds instead of after Slurm's hold of about 2 minutes (Reason=BeginTime)."""
        def running_again():
            job = self.jobs(job_id)[0]
            if int(job["Restarts"]) < restarts:
                return False
            # Not at once: slurmd refuses a start in the second its last run was revoked in
            # ("Job credential revoked"), and the job fails. Again if Slurm resets the hold.
            eligible = datetime.datetime.fromisoformat(job["EligibleTime"])
            if job["JobState"] == "PENDING" and eligible > datetime.datetime.now() + HOLD:
                self.run("scontrol", "update", "JobId=" + job_id, "StartTime=now+3")
            return job["JobState"] == "RUNNING" or job["JobState"] in ENDED
        self.wait_for(running_again, "job %s to run after requeue %d" % (job_id, restarts),
                      timeout)

    def wait_for(self, ready, what, timeout=90, interval=0.5):
        """Poll `ready()` until it returns something true; return that, or fail after timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = ready()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError("timed out after %d s waiting for %s\n%s"
                             % (timeout, what, self.log_tails()))
