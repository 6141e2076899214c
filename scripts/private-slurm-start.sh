#!/bin/bash
# Start a private, throwaway single-node Slurm cluster owned by the CURRENT user
# (root or not) with everything under DIR. Loopback only. No systemd needed.
#   usage: private-slurm-start.sh DIR [BASEPORT]
#   ports: slurmctld=BASEPORT slurmd=+1 slurmdbd=+2 mariadb=+3
#   env:   SLURM_TEST_AUTH=munge (default) | none      (none: no munged at all)
#          SLURM_TEST_ACCT=jobcomp (default) | dbd     (dbd: private MariaDB + slurmdbd,
#                                                      needs mariadb-server + slurmdbd installed)
# Prints "export SLURM_CONF=DIR/slurm.conf" on success; every client command
# (sbatch, squeue, scontrol, scancel, sacct, qsub, ...) needs that variable.
# Stop with: private-slurm-stop.sh DIR [--rm]
set -euo pipefail
D=$(realpath -m "${1:?usage: $0 DIR [BASEPORT]}")
PORT=${2:-$(( 20000 + (RANDOM % 4000) * 4 ))}
AUTH=${SLURM_TEST_AUTH:-munge}
ACCT=${SLURM_TEST_ACCT:-jobcomp}
ME=$(id -un)
mkdir -p "$D"/{spool/ctld,spool/d,log,run,munge}
chmod 711 "$D" "$D/run"     # munged wants the socket dir and its parents o+x (--force below
                            # lets it run under a 0700 parent such as pytest's tmp_path)
chmod 700 "$D/munge"        # key, seed and munged log stay private
cd "$D"
export SLURM_CONF="$D/slurm.conf"

# ---------------------------------------------------------------- munge ----
if [ "$AUTH" = munge ]; then
  [ -f munge/munge.key ] || mungekey --create --keyfile="$D/munge/munge.key"
  chmod 600 munge/munge.key
  munged --force --socket="$D/run/munge.sock" --key-file="$D/munge/munge.key" \
         --pid-file="$D/run/munged.pid" --log-file="$D/munge/munged.log" \
         --seed-file="$D/munge/munged.seed"
  AUTHCONF="AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/run/munge.sock"
else
  AUTHCONF="AuthType=auth/none
CredType=cred/none"
fi

# ------------------------------------------------- optional slurmdbd ------
if [ "$ACCT" = dbd ]; then
  DBPORT=$((PORT+3)); DBDPORT=$((PORT+2))
  if [ ! -d db/mysql ]; then
    mkdir -p db
    mariadb-install-db --no-defaults --datadir="$D/db" --skip-test-db \
        --auth-root-authentication-method=normal > log/mariadb-install.log 2>&1
  fi
  # mariadbd refuses to run as root unless told --user=root
  setsid mariadbd --no-defaults $([ "$(id -u)" = 0 ] && echo --user=root) \
      --datadir="$D/db" --socket="$D/run/mysql.sock" \
      --port=$DBPORT --bind-address=127.0.0.1 --skip-name-resolve \
      --pid-file="$D/run/mariadb.pid" --log-error="$D/log/mariadb.err" \
      --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=0 \
      </dev/null >/dev/null 2>&1 &
  for i in $(seq 1 150); do
    mariadb-admin --no-defaults --socket="$D/run/mysql.sock" -uroot ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  mariadb-admin --no-defaults --socket="$D/run/mysql.sock" -uroot ping >/dev/null 2>&1 \
    || { echo "mariadbd did not come up; see $D/log/mariadb.err" >&2; exit 1; }
  mariadb --no-defaults --socket="$D/run/mysql.sock" -uroot -e \
    "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
     CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw';
     GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
  # slurmdbd.conf must sit next to slurm.conf (found via $SLURM_CONF's directory)
  cat > slurmdbd.conf <<CONF
$AUTHCONF
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBDPORT
SlurmUser=$ME
LogFile=$D/log/slurmdbd.log
PidFile=$D/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DBPORT
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurmpw
CONF
  sed -i '/^CredType/d' slurmdbd.conf      # not a slurmdbd.conf key
  chmod 600 slurmdbd.conf                  # slurmdbd refuses a world-readable one
  ACCTCONF="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBDPORT"
  # the slurmdbd connection ignores AuthInfo; its munge socket comes from here
  [ "$AUTH" = munge ] && ACCTCONF="$ACCTCONF
AccountingStoragePass=$D/run/munge.sock"
  ACCTCONF="$ACCTCONF
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
else
  ACCTCONF="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi

# ------------------------------------------------------------ slurm.conf --
cat > slurm.conf <<CONF
ClusterName=private
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT+1))
SlurmUser=$ME
SlurmdUser=$ME
$AUTHCONF
StateSaveLocation=$D/spool/ctld
SlurmdSpoolDir=$D/spool/d
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$D/plugstack.conf
# no cgroups: proctrack/cgroup fails in this VM and the job "completes" without running
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
$ACCTCONF
# finished-job records without a database: read with  sacct -c
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.log
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# pretend 16 CPUs so many trivial jobs run at once on a 2-core box
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
NodeName=localhost NodeHostname=$(hostname -s) NodeAddr=127.0.0.1 CPUs=16 RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=long  Nodes=localhost Default=NO  MaxTime=INFINITE State=UP
CONF
# PBS_* variables in jobs (for the slurm-wlm-torque qsub wrapper); harmless otherwise
echo "optional /usr/lib/x86_64-linux-gnu/slurm-wlm/spank_pbs.so" > plugstack.conf

if [ "$ACCT" = dbd ]; then
  # slurmctld must not start before slurmdbd answers: with an empty StateSaveLocation
  # it exits with "running with a database but ... no TRES from it"
  slurmdbd
  for i in $(seq 1 100); do timeout 3 sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.1; done
  timeout 3 sacctmgr -n list cluster >/dev/null 2>&1 \
    || { echo "slurmdbd did not come up; see $D/log/slurmdbd.log" >&2; exit 1; }
fi

slurmctld                 # both daemonise; pid files in $D/run
slurmd -N localhost
# client commands retry ~9 s against a dead slurmctld, so bound each call
st=; end=$((SECONDS + 20))
while [ $SECONDS -lt $end ]; do
  if [ -s run/slurmctld.pid ] && { p=$(cat run/slurmctld.pid); [ ! -r /proc/$p/status ] || grep -q '^State:[[:space:]]*Z' /proc/$p/status; }; then
    echo "slurmctld died; see $D/log/slurmctld.log" >&2; exit 1
  fi
  st=$(timeout 3 sinfo -h -n localhost -o %T 2>/dev/null || true)
  case "$st" in idle*|mixed*|allocated*) break;; esac
  sleep 0.1
done
case "$st" in idle*|mixed*|allocated*) ;;
  *) echo "slurm did not come up (node state '$st'); see $D/log" >&2; exit 1;; esac
# other users (root-owned cluster) may read job records with  sacct -c, which opens
# JobCompLoc for append; slurmctld resets it to 0644 at every start/reconfigure
chmod 666 log/jobcomp.log 2>/dev/null || true
echo "export SLURM_CONF=$D/slurm.conf"
