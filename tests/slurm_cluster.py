"""A one-node SLURM cluster on localhost for the tests: munged, slurmctld and slurmd as plain processes.

Needs root and Debian's slurm-wlm and munge packages (.ci/run installs them). No systemd: every daemon runs in
the foreground as a child of the test process and is stopped by `stop()`. The node has three fake GPUs (typed
gres gpu:l4 on /dev/null, /dev/zero and /dev/full) in a partition named like HiPerGator's hpg-turin, so the
project's sbatch scripts, which ask for --partition=hpg-turin --gres=gpu:l4:N, are submitted unchanged. No
partition is the default: a script that names none, or another, is refused here.

Job credentials last 10 s instead of SLURM's default 120 s: that is also how long a requeued job is held before
it may start again (starting it earlier, with `scontrol update StartTime=now`, races the revoked credential of its
killed first run: "Job credential revoked", and the job fails). The schedulers look at pending jobs every second
instead of every 30-60 s, so a job held so starts when its hold ends, not at the next backfill pass.

Waits are bounded by progress, not by wall time: a wait fails only when nothing has changed (job state, restarts,
the size of the files the caller watches) for `stall` seconds, so a slow or busy machine only makes it longer.
"""
import os
import shutil
import subprocess
import time
from pathlib import Path

SLURM_CONF = """\
ClusterName=facecolor-test
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
GresTypes=gpu
JobRequeue=1
ReturnToService=2
MinJobAge=600
SchedulerParameters=sched_interval=1,bf_interval=1
KillWait=5
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=20000 Gres=gpu:l4:3 State=UNKNOWN
PartitionName=hpg-turin Nodes=localhost Default=NO MaxTime=INFINITE State=UP
"""


def missing_requirements():
    """Why this machine cannot run the cluster, or None."""
    if os.geteuid() != 0:
        return "SLURM tests need root (munged and slurmd run as root here)"
    for tool in ("munged", "slurmctld", "slurmd", "sbatch"):
        if shutil.which(tool) is None:
            return f"{tool} not found: apt-get install slurm-wlm munge"
    return None


class Cluster:
    def __init__(self, root):
        self.root = Path(root)
        self.env = {**os.environ, "SLURM_CONF": str(self.root / "slurm.conf")}
        self.processes = []

    def start(self):
        for sub in ("state", "spool"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "slurm.conf").write_text(SLURM_CONF.format(
            root=self.root, cpus=os.cpu_count(), ctld_port=16817, d_port=16818))
        (self.root / "gres.conf").write_text("".join(f"NodeName=localhost Name=gpu Type=l4 File={device}\n"
                                                     for device in ("/dev/null", "/dev/zero", "/dev/full")))
        Path("/run/munge").mkdir(exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        self._spawn(["runuser", "-u", "munge", "--", "munged", "-F", "--force"])
        self._wait_for(lambda: subprocess.run(["munge", "-n"], capture_output=True).returncode == 0, "munged")
        self._spawn(["slurmctld", "-D", "-i", "-f", str(self.root / "slurm.conf")])
        self._spawn(["slurmd", "-D", "-N", "localhost", "-f", str(self.root / "slurm.conf")])
        self._wait_for(lambda: self.run("sinfo", "-h", "-o", "%T").stdout.strip() == "idle", "an idle node")
        return self

    def _spawn(self, command):
        log = open(self.root / f"{Path(command[-1] if command[0] == 'runuser' else command[0]).name}.out", "w")
        self.processes.append(subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT))

    def _wait_for(self, ready, what, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.3)
        raise RuntimeError(f"SLURM test cluster: no {what} after {timeout} s; logs in {self.root}")

    def run(self, *command):
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)

    def submit(self, script, *options, env=None, cwd):
        """sbatch a script; returns the job id."""
        result = subprocess.run(["sbatch", "--parsable", *options, str(script)], env={**self.env, **(env or {})},
                                capture_output=True, text=True, cwd=cwd, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"sbatch failed: {result.stderr.strip()}")
        return result.stdout.strip().split(";")[0]

    def job(self, job_id):
        """scontrol's fields of a job as a dict (sacct needs slurmdbd, which this cluster does not run)."""
        out = self.run("scontrol", "-o", "show", "job", job_id).stdout
        return dict(field.split("=", 1) for field in out.split() if "=" in field)

    def wait_until(self, job_id, condition, watch=(), stall=120):
        """Poll the job's scontrol fields until condition(fields) holds; returns them. Fails after `stall` seconds
        in which neither the job's state and restart count nor the total size of the files in `watch` (e.g. its
        log) changed."""
        last_change, last_seen = time.monotonic(), None
        while True:
            info = self.job(job_id)
            if condition(info):
                return info
            seen = (info.get("JobState"), info.get("Restarts"), sum(_size(path) for path in watch))
            if seen != last_seen:
                last_change, last_seen = time.monotonic(), seen
            elif time.monotonic() - last_change > stall:
                raise RuntimeError(f"job {job_id} made no progress for {stall} s: still {info.get('JobState')} "
                                   f"({info.get('Reason')}); logs in {self.root}")
            time.sleep(0.5)

    def wait(self, job_id, watch=(), stall=120):
        """Wait until the job has ended; returns its final scontrol fields."""
        ended = ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL", "OUT_OF_MEMORY")
        return self.wait_until(job_id, lambda info: info.get("JobState") in ended, watch, stall)

    def daemon_logs(self, lines=30):
        """The last lines of slurmctld's and slurmd's logs, for a failing test's message."""
        return "".join(f"\n--- {name}\n" + "\n".join((self.root / name).read_text().splitlines()[-lines:])
                       for name in ("slurmctld.log", "slurmd.log") if (self.root / name).exists())

    def stop(self):
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _size(path):
    """Bytes in a file, or in all files of a folder (recursively); 0 if missing."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0
