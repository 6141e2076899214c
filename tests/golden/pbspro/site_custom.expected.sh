#!/bin/bash
# OpenPBS / PBS Pro batch script written by hpcpull for an HTCondor job (route Cluster_Long).
# The job runs in its job directory through .hpcpull/launcher.py, which records the
# payload's exit status and resource usage in .hpcpull/exit_status.
#
# The batch system's own output holds only what this wrapper and the site setup print;
# the job's stdout/stderr go to files in .hpcpull/.
#PBS -j oe
#PBS -S /bin/bash
# Site resources (HPCPULL_EXTRA_DIRECTIVES "-l ..."): for a resource named twice in the
# script PBS Pro keeps the FIRST value, so these come before the generated ones.
#PBS -l place=pack
# An HTCondor job is one process tree on one machine: one chunk with all its cores.
#PBS -l select=1:ncpus=2:mem=4000mb
#PBS -l walltime=48:00:00
#PBS -q long
#PBS -A hep-prod
# Site directives (HPCPULL_EXTRA_DIRECTIVES) other than -l: for a repeated option the
# LAST one wins, so they come after the generated ones.
#PBS -m n
#PBS -W umask=027

# Stop at the first failing command or unset variable: a broken wrapper must never pass
# for a job that ran (hpcpull trusts only .hpcpull/exit_status, written by the launcher).
set -euo pipefail

printf 'hpcpull: HTCondor job %s.%s (%s) of user %s on %s\n' \
    104 0 'submit.example.org#104.0#1795240300' \
    alice "$HOSTNAME"

# This script runs in the batch job's own environment; the job's environment goes to the
# launcher below, for the payload. The launcher's interpreter is found first, so that
# the site setup (a `module load`, say) cannot change which Python runs it either.
hpcpull_python=$(command -v /usr/bin/python3) || {
    echo "hpcpull: the launcher's interpreter" /usr/bin/python3 "is not available on $HOSTNAME" >&2
    exit 127
}

# Site setup (HPCPULL_ENVIRONMENT_SETUP). nounset is off while it runs because module(1)
# and many profile scripts read unset variables; a failing line still stops the job.
set +u
module purge
module load python/3.11 root/6.30
export TMPDIR=/local/$SLURM_JOB_ID
set -u

cd /scratch/hpcpull/alice/104/0

# Run the payload. The launcher writes .hpcpull/started, redirects the job's streams,
# waits, then writes .hpcpull/exit_status (exit code or signal, times, CPU, max RSS)
# atomically. If the batch system kills the job (time limit, cancel), the launcher dies with it and
# writes no exit_status: that is how hpcpull tells it from a payload killed by a signal.
# The payload gets this script's environment plus each --env variable: the job's, then
# those HTCondor sets for every job (a later one wins). The launcher itself keeps none of
# them, and -I keeps PYTHON* variables and user site-packages away from it.
exec "$hpcpull_python" -I .hpcpull/launcher.py \
    --env 'PIPELINE_STAGE=2' \
    --env '_CONDOR_SCRATCH_DIR=/scratch/hpcpull/alice/104/0' \
    --env '_CONDOR_JOB_IWD=/scratch/hpcpull/alice/104/0' \
    --env '_CONDOR_JOB_AD=/scratch/hpcpull/alice/104/0/.hpcpull/job.ad' \
    --stdin /dev/null \
    --stdout .hpcpull/stdout \
    --stderr .hpcpull/stderr \
    --started .hpcpull/started \
    --status .hpcpull/exit_status \
    -- ./stage.sh stage2 input.root
