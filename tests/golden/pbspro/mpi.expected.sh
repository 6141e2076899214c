#!/bin/bash
# OpenPBS / PBS Pro batch script written by hpcpull for an HTCondor job (route Mpi).
# The job runs in its job directory through .hpcpull/launcher.py, which records the
# payload's exit status and resource usage in .hpcpull/exit_status.
#
# The batch system's own output holds only what this wrapper and the site setup print;
# the job's stdout/stderr go to files in .hpcpull/.
#PBS -j oe
#PBS -S /bin/bash
# A multi-task (MPI) job: one chunk per node, HpcPullTasksPerNode MPI ranks in each.
#PBS -l select=4:ncpus=32:mpiprocs=16:mem=96000mb
#PBS -l place=scatter
#PBS -l walltime=10:00:00
#PBS -q parallel

# Stop at the first failing command or unset variable: a broken wrapper must never pass
# for a job that ran (hpcpull trusts only .hpcpull/exit_status, written by the launcher).
set -euo pipefail

printf 'hpcpull: HTCondor job %s.%s (%s) of user %s on %s\n' \
    108 0 'submit.example.org#108.0#1795240700' \
    alice "$HOSTNAME"

# This script runs in the batch job's own environment; the job's environment goes to the
# launcher below, for the payload. The launcher's interpreter is found first, so that
# the site setup (a `module load`, say) cannot change which Python runs it either.
hpcpull_python=$(command -v python3) || {
    echo "hpcpull: the launcher's interpreter" python3 "is not available on $HOSTNAME" >&2
    exit 127
}

# Site setup (HPCPULL_ENVIRONMENT_SETUP). nounset is off while it runs because module(1)
# and many profile scripts read unset variables; a failing line still stops the job.
set +u
module load openmpi/4.1
set -u

# The route's launchers (HPCPULL_LAUNCHER), found on this script's PATH after the site
# setup and started by their absolute paths, whatever PATH the launcher runs with.
hpcpull_mpiexec=$(type -P mpiexec) || {
    echo "hpcpull: the route's launcher" mpiexec "is not available on $HOSTNAME" >&2
    exit 127
}

cd /scratch/hpcpull/alice/108/0

# Run the payload. The launcher writes .hpcpull/started, redirects the job's streams,
# waits, then writes .hpcpull/exit_status (exit code or signal, times, CPU, max RSS)
# atomically. If the batch system kills the job (time limit, cancel), the launcher dies with it and
# writes no exit_status: that is how hpcpull tells it from a payload killed by a signal.
# The payload gets this script's environment plus each --env variable: the job's, then
# those HTCondor sets for every job (a later one wins). The launcher itself keeps none of
# them, and -I keeps PYTHON* variables and user site-packages away from it.
# The route starts the payload through HPCPULL_LAUNCHER: 'mpiexec -n 64 --bind-to core'
# These launchers (the first --chain words after --) run in this script's environment, not
# the job's: the launcher puts `/usr/bin/env -- NAME=VALUE...` between them and the payload,
# so the --env variables are set where the payload runs, for the payload alone.
exec "$hpcpull_python" -I .hpcpull/launcher.py \
    --env 'OMP_NUM_THREADS=2' \
    --env '_CONDOR_SCRATCH_DIR=/scratch/hpcpull/alice/108/0' \
    --env '_CONDOR_JOB_IWD=/scratch/hpcpull/alice/108/0' \
    --env '_CONDOR_JOB_AD=/scratch/hpcpull/alice/108/0/.hpcpull/job.ad' \
    --chain 5 \
    --stdin /dev/null \
    --stdout .hpcpull/stdout \
    --stderr .hpcpull/stderr \
    --started .hpcpull/started \
    --status .hpcpull/exit_status \
    -- "$hpcpull_mpiexec" -n 64 --bind-to core ./solver --mesh mesh.h5 --steps 1000
