#!/bin/bash
# LSF batch script written by hpcpull for an HTCondor job (route Containers).
# The job runs in its job directory through .hpcpull/launcher.py, which records the
# payload's exit status and resource usage in .hpcpull/exit_status.
#
# The batch system's own output holds only what this wrapper and the site setup print;
# the job's stdout/stderr go to files in .hpcpull/.
# An HTCondor job is one process tree on one machine: all its cores on one host.
#BSUB -n 1
#BSUB -R "span[hosts=1] rusage[mem=3000MB]"
# Memory limit per process; the reservation above is RequestMemory per host, spread over its slots.
#BSUB -M 3000MB
# Run limit in minutes.
#BSUB -W 1440

# Stop at the first failing command or unset variable: a broken wrapper must never pass
# for a job that ran (hpcpull trusts only .hpcpull/exit_status, written by the launcher).
set -euo pipefail

printf 'hpcpull: HTCondor job %s.%s (%s) of user %s on %s\n' \
    109 2 'submit.example.org#109.2#1795240800' \
    alice "$HOSTNAME"

# This script runs in the batch job's own environment; the job's environment goes to the
# launcher below, for the payload. The launcher's interpreter is found first, so that
# the site setup (a `module load`, say) cannot change which Python runs it either.
hpcpull_python=$(command -v python3) || {
    echo "hpcpull: the launcher's interpreter" python3 "is not available on $HOSTNAME" >&2
    exit 127
}

# The route's launchers (HPCPULL_LAUNCHER), found on this script's PATH after the site
# setup and started by their absolute paths, whatever PATH the launcher runs with.
hpcpull_apptainer=$(type -P apptainer) || {
    echo "hpcpull: the route's launcher" apptainer "is not available on $HOSTNAME" >&2
    exit 127
}

cd /scratch/hpcpull/alice/109/2

# Run the payload. The launcher writes .hpcpull/started, redirects the job's streams,
# waits, then writes .hpcpull/exit_status (exit code or signal, times, CPU, max RSS)
# atomically. If the batch system kills the job (time limit, cancel), the launcher dies with it and
# writes no exit_status: that is how hpcpull tells it from a payload killed by a signal.
# The payload gets this script's environment plus each --env variable: the job's, then
# those HTCondor sets for every job (a later one wins). The launcher itself keeps none of
# them, and -I keeps PYTHON* variables and user site-packages away from it.
# The route starts the payload through HPCPULL_LAUNCHER: 'apptainer exec --bind /cvmfs --contain /cvmfs/unpacked.cern.ch/registry.hub.docker.com/library/almalinux:9'
# These launchers (the first --chain words after --) run in this script's environment, not
# the job's: the launcher puts `/usr/bin/env -- NAME=VALUE...` between them and the payload,
# so the --env variables are set where the payload runs, for the payload alone.
exec "$hpcpull_python" -I .hpcpull/launcher.py \
    --env '_CONDOR_SCRATCH_DIR=/scratch/hpcpull/alice/109/2' \
    --env '_CONDOR_JOB_IWD=/scratch/hpcpull/alice/109/2' \
    --env '_CONDOR_JOB_AD=/scratch/hpcpull/alice/109/2/.hpcpull/job.ad' \
    --chain 6 \
    --stdin /dev/null \
    --stdout .hpcpull/stdout \
    --stderr .hpcpull/stderr \
    --started .hpcpull/started \
    --status .hpcpull/exit_status \
    -- "$hpcpull_apptainer" exec --bind /cvmfs --contain /cvmfs/unpacked.cern.ch/registry.hub.docker.com/library/almalinux:9 ./run_ana.sh sample 2
