"""The UPDATE attribute sets per transition: what the router copies onto the source job
(src/condor_job_router/VanillaToGrid.cpp, update_job_status), set as the gridmanager sets them
for a grid job (src/condor_gridmanager/basejob.cpp)."""

import classad2

from hpcpull.router.jobstate import ExitRecord, Hold, Observation, Phase, transition


def copy_ad(**attrs):
    ad = classad2.ClassAd()
    ad.update({"JobStatus": 1, "NumJobStarts": 0, "JobRunCount": 0, **attrs})
    return ad


EXIT3 = ExitRecord(exit_code=3, exit_signal=None, start=1000.0, end=1020.0, wall_s=20.0,
                   user_cpu_s=5.0, sys_cpu_s=1.0, max_rss_kb=43000)


def test_pending_on_an_idle_copy_prints_nothing():
    assert transition(copy_ad(), Observation(Phase.PENDING), 2000) == {}


def test_running_set_starts_a_run_interval():
    out = transition(copy_ad(NumJobStarts=1, JobRunCount=1), Observation(Phase.RUNNING, start=1000), 1005)
    assert out == {"JobStatus": 2, "EnteredCurrentStatus": 1000, "ShadowBday": 1000,
                   "JobCurrentStartDate": 1000, "NumJobStarts": 2, "JobRunCount": 2, "JobStartDate": 1000}


def test_running_again_keeps_the_first_start_date_and_clears_a_hold():
    ad = copy_ad(JobStatus=5, JobStartDate=500, HoldReason="x", HoldReasonCode=34, HoldReasonSubCode=1)
    out = transition(ad, Observation(Phase.RUNNING, start=1000), 1005)
    assert "JobStartDate" not in out
    assert out["HoldReason"] is None and out["HoldReasonCode"] is None and out["HoldReasonSubCode"] is None


def test_running_while_running_prints_nothing():
    assert transition(copy_ad(JobStatus=2), Observation(Phase.RUNNING, start=1000), 1005) == {}


def test_finished_never_seen_running_reports_running_first():
    out = transition(copy_ad(), Observation(Phase.FINISHED, exit=EXIT3), 1030)
    assert out["JobStatus"] == 2 and out["ShadowBday"] == 1000


def test_completed_set_carries_the_exit_and_the_usage():
    ad = copy_ad(JobStatus=2, ShadowBday=1000, JobCurrentStartDate=1000)
    out = transition(ad, Observation(Phase.FINISHED, exit=EXIT3), 1030)
    assert out == {"JobStatus": 4, "EnteredCurrentStatus": 1020, "CompletionDate": 1020, "ExitCode": 3,
                   "ExitBySignal": False, "RemoteWallClockTime": 20.0, "RemoteUserCpu": 5.0,
                   "RemoteSysCpu": 1.0, "ShadowBday": None, "MemoryUsage": 42, "ResidentSetSize": 43000,
                   "JobFinishedHookDone": 1030, "Managed": "ScheddDone"}


def test_signal_exit_sets_exit_by_signal_and_no_exit_code():
    rec = ExitRecord(None, 9, 1000.0, 1010.0, 10.0, 0.0, 0.0, 1000)
    out = transition(copy_ad(JobStatus=2, ShadowBday=1000), Observation(Phase.FINISHED, exit=rec), 1011)
    assert out["ExitBySignal"] is True and out["ExitSignal"] == 9 and "ExitCode" not in out


def test_wall_clock_is_cumulative_over_requeues_and_reroutes():
    # Routed a second time: the source had 100 s from an earlier routing.
    ad = copy_ad(JobStatus=2, ShadowBday=1000, HpcPullPriorWallClock=100.0)
    requeue = transition(ad, Observation(Phase.PENDING), 1030)
    assert requeue == {"JobStatus": 1, "EnteredCurrentStatus": 1030, "ShadowBday": None,
                       "RemoteWallClockTime": 130.0}
    ad.update({**requeue, "ShadowBday": 2000, "JobStatus": 2})
    rec = ExitRecord(0, None, 2000.0, 2015.0, 15.0, 1.0, 0.0, 2048)
    done = transition(ad, Observation(Phase.FINISHED, exit=rec), 2020)
    assert done["RemoteWallClockTime"] == 145.0


def test_hold_set_and_no_repeat_once_held():
    hold = Hold("hpcpull: batch job 7 was preempted", 0, 15)
    out = transition(copy_ad(JobStatus=2, ShadowBday=1000), Observation(Phase.FAILED, hold=hold), 1010)
    assert out["JobStatus"] == 5 and out["HoldReason"] == hold.reason
    assert out["HoldReasonCode"] == 0 and out["HoldReasonSubCode"] == 15
    assert out["RemoteWallClockTime"] == 10.0 and out["ShadowBday"] is None
    assert transition(copy_ad(JobStatus=5), Observation(Phase.FAILED, hold=hold), 1020) == {}


def test_unknown_never_changes_anything():
    for status in (1, 2, 5):
        assert transition(copy_ad(JobStatus=status), Observation(Phase.UNKNOWN), 1) == {}
