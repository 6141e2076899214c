"""The smallest real-router run: one job through condor_submit, the router and Slurm."""

from __future__ import annotations


def test_exit_code_comes_back(gateway_pool):
    d = gateway_pool.job_dir("smoke")
    cluster = gateway_pool.submit(d, """\
executable = /bin/sh
arguments = "-c 'echo hello; exit 3'"
output = job.out
error = job.err
log = job.log
+WantHpc = true
queue
""")
    record = gateway_pool.finished(cluster)
    assert record["ExitCode"] == 3
    assert (d / "job.out").read_text() == "hello\n"
    assert len(gateway_pool.batch_jobs(cluster)) == 1
