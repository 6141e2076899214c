#!/bin/bash
# LSF batch script written by hpcpull for an HTCondor job (route Slurm).
# The job runs in its job directory through .hpcpull/launcher.py, which records the
# payload's exit status and resource usage in .hpcpull/exit_status.
#
# The batch system's own output holds only what this wrapper and the site setup print;
# the job's stdout/stderr go to files in .hpcpull/.
# An HTCondor job is one process tree on one machine: all its cores on one host.
#BSUB -n 1
#BSUB -R "span[hosts=1] rusage[mem=512MB]"
# Memory limit per process; the reservation above is RequestMemory per host, spread over its slots.
#BSUB -M 512MB
# No -W: the job sets no BatchRuntime/maxWallTime and the route no default walltime,
# so the queue's RUNLIMIT applies.

# Stop at the first failing command or unset variable: a broken wrapper must never pass
# for a job that ran (hpcpull trusts only .hpcpull/exit_status, written by the launcher).
set -euo pipefail

printf 'hpcpull: HTCondor job %s.%s (%s) of user %s on %s\n' \
    105 1 'submit.example.org#105.1#1795240400' \
    alice "$HOSTNAME"

# This script runs in the batch job's own environment; the job's environment goes to the
# launcher below, for the payload. The launcher's interpreter is found first, so that
# the site setup (a `module load`, say) cannot change which Python runs it either.
hpcpull_python=$(command -v python3) || {
    echo "hpcpull: the launcher's interpreter" python3 "is not available on $HOSTNAME" >&2
    exit 127
}

cd /scratch/hpcpull/alice/105/1

# Run the payload. The launcher writes .hpcpull/started, redirects the job's streams,
# waits, then writes .hpcpull/exit_status (exit code or signal, times, CPU, max RSS)
# atomically. If the batch system kills the job (time limit, cancel), the launcher dies with it and
# writes no exit_status: that is how hpcpull tells it from a payload killed by a signal.
# The payload gets this script's environment plus each --env variable: the job's, then
# those HTCondor sets for every job (a later one wins). The launcher itself keeps none of
# them, and -I keeps PYTHON* variables and user site-packages away from it.
exec "$hpcpull_python" -I .hpcpull/launcher.py \
    --env 'GREETING=hello world' \
    --env 'QUOTE=it'\''s' \
    --env 'EMPTY=' \
    --env 'IFS=:' \
    --env '_CONDOR_SCRATCH_DIR=/scratch/hpcpull/alice/105/1' \
    --env '_CONDOR_JOB_IWD=/scratch/hpcpull/alice/105/1' \
    --env '_CONDOR_JOB_AD=/scratch/hpcpull/alice/105/1/.hpcpull/job.ad' \
    --stdin 'input data.txt' \
    --stdout .hpcpull/stdout \
    --merge-stderr \
    --started .hpcpull/started \
    --status .hpcpull/exit_status \
    -- ./report.sh --title 'Quarterly report: Q3 '\''24' --glob '*.csv' '' --say '"hi" there' --note 'costs $(rise) & `fall`; rm -rf ~' --path '/data/my files'
