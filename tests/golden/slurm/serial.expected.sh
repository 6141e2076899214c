#!/bin/bash
# Slurm batch script written by hpcpull for an HTCondor job (route Slurm).
# The job runs in its job directory through .hpcpull/launcher.py, which records the
# payload's exit status and resource usage in .hpcpull/exit_status.
#
# Slurm's own output holds only what this wrapper and the site setup print; the job's
# stdout/stderr go to files in .hpcpull/. There is no --job-name: hpcpull passes it on
# the sbatch command line, so that a resubmission gets a fresh name.
#SBATCH --output=/scratch/hpcpull/alice/78/0/.hpcpull/batch.out
#SBATCH --chdir=/scratch/hpcpull/alice/78/0
# An HTCondor job is one process tree on one machine: one task with all its cores.
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --mem=64M
# No --time: the job sets no BatchRuntime/maxWallTime and the route no default walltime,
# so the partition's default time limit applies.

# Stop at the first failing command or unset variable: a broken wrapper must never pass
# for a job that ran (hpcpull trusts only .hpcpull/exit_status, written by the launcher).
set -euo pipefail

printf 'hpcpull: HTCondor job %s.%s (%s) of user %s on %s\n' \
    78 0 'vm#78.0#1795238341' \
    alice "$HOSTNAME"

# This script runs in the batch job's own environment; the job's environment goes to the
# launcher below, for the payload. The launcher's interpreter is found first, so that
# the site setup (a `module load`, say) cannot change which Python runs it either.
hpcpull_python=$(command -v python3) || {
    echo "hpcpull: the launcher's interpreter" python3 "is not available on $HOSTNAME" >&2
    exit 127
}

cd /scratch/hpcpull/alice/78/0

# Run the payload. The launcher writes .hpcpull/started, redirects the job's streams,
# waits, then writes .hpcpull/exit_status (exit code or signal, times, CPU, max RSS)
# atomically. If the batch system kills the job (time limit, cancel), the launcher dies with it and
# writes no exit_status: that is how hpcpull tells it from a payload killed by a signal.
# The payload gets this script's environment plus each --env variable: the job's, then
# those HTCondor sets for every job (a later one wins). The launcher itself keeps none of
# them, and -I keeps PYTHON* variables and user site-packages away from it.
exec "$hpcpull_python" -I .hpcpull/launcher.py \
    --env '_CONDOR_SCRATCH_DIR=/scratch/hpcpull/alice/78/0' \
    --env '_CONDOR_JOB_IWD=/scratch/hpcpull/alice/78/0' \
    --env '_CONDOR_JOB_AD=/scratch/hpcpull/alice/78/0/.hpcpull/job.ad' \
    --stdin /dev/null \
    --stdout .hpcpull/stdout \
    --stderr .hpcpull/stderr \
    --started .hpcpull/started \
    --status .hpcpull/exit_status \
    -- ./sh -c 'date >> /home/alice/jobs/RAN-src78.0.txt; sleep 8'
