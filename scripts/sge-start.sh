#!/bin/bash
# Start (and on first run configure) Debian's Grid Engine cell "default" on this host, as
# root, without systemd.  Idempotent: every configuration step checks first.
# Debian's packaged cell setup (gridengine-master's postinst, then qconf as in qconf(1)),
# plus what hpcpull's tests need:
#   * global config min_uid/min_gid 0: the tests run as root, whose jobs the default
#     (min_uid 1000) refuses; login_shells none (jobs do not read root's profile);
#   * scheduling every second, accounting flushed every second (defaults: 15 s);
#   * parallel environments smp ($pe_slots) and mpi ($fill_up), 16 slots each;
#   * queues all.q and long.q (8 slots each, pe_list smp mpi) on this host.  Their shell
#     is /bin/sh in posix_compliant mode, SGE's usual default: a job's #! line is ignored
#     unless qsub -S names the shell (the adapter passes it).
# qmaster and execd listen on the fixed ports 6444/6445: one Grid Engine per host.
# Prints `qstat -f` when the queues are up; exit status non-zero when they are not.
set -euo pipefail
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
command -v sge_qmaster >/dev/null || [ -x /usr/sbin/sge_qmaster ] || {
  echo "sge-start.sh: Grid Engine is not installed (run scripts/sge-install.sh)" >&2; exit 2; }
H=$(hostname)
C=$SGE_ROOT/$SGE_CELL/common
mkdir -p /var/run/gridengine && chown sgeadmin:sgeadmin /var/run/gridengine
# Note: /etc/hosts maps 127.0.0.1 to "localhost" first, so SGE's reverse lookup of the
# hostname gives "localhost" and qmaster rejects clients ("access denied ... client IP
# resolved to host name localhost").  host_aliases makes both names one host.
echo "$H localhost" > "$C/host_aliases"; chown sgeadmin:sgeadmin "$C/host_aliases"
echo "$H" > "$C/act_qmaster"

# alive = exists and is not a zombie (PID 1 here reaps late; kill -0 succeeds on zombies)
pid_alive() { local p; p=$(cat "$1" 2>/dev/null) && [ -n "$p" ] && [ -r "/proc/$p/status" ] \
  && ! grep -q '^State:[[:space:]]*Z' "/proc/$p/status"; }
# sge_qmaster ignores SGE_MASTER_PIDFILE; this is where it writes its pid
pid_alive /var/spool/gridengine/qmaster/qmaster.pid || /usr/sbin/sge_qmaster
up=
for _ in $(seq 1 100); do timeout 5 qconf -sh >/dev/null 2>&1 && { up=1; break; }; sleep 0.1; done
[ -n "$up" ] || { echo "sge-start.sh: qmaster does not answer" >&2; exit 1; }

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# --- global configuration: root may submit; accounting flushed every second; no login
# shells (the default starts bash/sh jobs as login shells, which run root's profile here,
# e.g. a pyenv rehash that can wait a minute for its lock) --------------------------------
# (qconf -Mconf FILE requires the file to be NAMED after the configuration: "global")
mkdir "$T/g"
qconf -sconf global > "$T/g/global.old"
sed -e 's/^min_uid .*/min_uid                      0/' \
    -e 's/^min_gid .*/min_gid                      0/' \
    -e 's/^login_shells .*/login_shells                 none/' \
    -e 's/flush_time=[0-9:]*/flush_time=00:00:01/' "$T/g/global.old" > "$T/g/global"
if ! cmp -s "$T/g/global.old" "$T/g/global"; then
  (cd "$T/g" && qconf -Mconf global >/dev/null)
fi

# --- scheduler: a pass every second ------------------------------------------------------
qconf -ssconf > "$T/sconf.old"
sed -e 's/^schedule_interval .*/schedule_interval                 0:0:1/' \
    -e 's/^flush_submit_sec .*/flush_submit_sec                  1/' \
    -e 's/^flush_finish_sec .*/flush_finish_sec                  1/' \
    -e 's/^job_load_adjustments .*/job_load_adjustments              NONE/' \
    -e 's/^load_adjustment_decay_time .*/load_adjustment_decay_time        0:0:0/' \
    "$T/sconf.old" > "$T/sconf"
cmp -s "$T/sconf.old" "$T/sconf" || qconf -Msconf "$T/sconf" >/dev/null

# --- this host: submit host, execution host, @allhosts ----------------------------------
qconf -ss 2>/dev/null | grep -qx "$H" || qconf -as "$H" >/dev/null
if ! qconf -sel 2>/dev/null | grep -qx "$H"; then
  printf 'hostname %s\nload_scaling NONE\ncomplex_values NONE\nuser_lists NONE\nxuser_lists NONE\nprojects NONE\nxprojects NONE\nusage_scaling NONE\nreport_variables NONE\n' "$H" > "$T/eh"
  qconf -Ae "$T/eh" >/dev/null
fi
if ! qconf -shgrpl 2>/dev/null | grep -qx '@allhosts'; then
  printf 'group_name @allhosts\nhostlist %s\n' "$H" > "$T/hg"
  qconf -Ahgrp "$T/hg" >/dev/null
fi

# --- parallel environments (sge_pe(5)) ----------------------------------------------------
add_pe() {  # name allocation_rule
  qconf -spl 2>/dev/null | grep -qx "$1" && return 0
  cat > "$T/pe-$1" <<PE
pe_name            $1
slots              16
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    $2
control_slaves     FALSE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
PE
  qconf -Ap "$T/pe-$1" >/dev/null
}
add_pe smp '$pe_slots'
add_pe mpi '$fill_up'

# --- queues (sge_queue_conf(5)) -------------------------------------------------------------
for q in all.q long.q; do
  qconf -sql 2>/dev/null | grep -qx "$q" && continue
  cat > "$T/$q" <<Q
qname $q
hostlist @allhosts
seq_no 0
load_thresholds NONE
suspend_thresholds NONE
nsuspend 1
suspend_interval 00:05:00
priority 0
min_cpu_interval 00:05:00
processors UNDEFINED
qtype BATCH INTERACTIVE
ckpt_list NONE
pe_list smp mpi
rerun FALSE
slots 8
tmpdir /tmp
shell /bin/sh
prolog NONE
epilog NONE
shell_start_mode posix_compliant
starter_method NONE
suspend_method NONE
resume_method NONE
terminate_method NONE
notify 00:00:60
owner_list NONE
user_lists NONE
xuser_lists NONE
subordinate_list NONE
complex_values NONE
projects NONE
xprojects NONE
calendar NONE
initial_state default
s_rt INFINITY
h_rt INFINITY
s_cpu INFINITY
h_cpu INFINITY
s_fsize INFINITY
h_fsize INFINITY
s_data INFINITY
h_data INFINITY
s_stack INFINITY
h_stack INFINITY
s_core INFINITY
h_core INFINITY
s_rss INFINITY
h_rss INFINITY
s_vmem INFINITY
h_vmem INFINITY
Q
  qconf -Aq "$T/$q" >/dev/null
done

# --- execution daemon -------------------------------------------------------------------------
pid_alive /var/run/gridengine/execd.pid || SGE_EXECD_PIDFILE=/var/run/gridengine/execd.pid /usr/sbin/sge_execd
# wait until execd has reported: every queue instance's state column empty (not "u"/"au")
for _ in $(seq 1 150); do
  st=$(qstat -f 2>/dev/null | awk '/^(all|long)\.q@/{n++; if ($6 == "") ok++} END {print (n == 2 && ok == 2) ? "ok" : "wait"}')
  if [ "$st" = ok ]; then qstat -f; exit 0; fi
  sleep 0.2
done
echo "sge-start.sh: the queues did not come up:" >&2
qstat -f >&2 || true
exit 1
