"""No way in: credentials stay private and fresh, job-made paths never lead outside the job."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

from tests.integration.test_pipeline import finished, make_job

PROXY = "-----BEGIN CERTIFICATE-----\nsecret-proxy-v1\n-----END CERTIFICATE-----\n"
RENEWED = PROXY.replace("v1", "v2")


def test_proxy_is_staged_private_renewed_and_never_logged(gateway: Any, tmp_path: Path) -> None:
    submit = tmp_path / "submit"
    submit.mkdir()
    proxy = submit / "x509up_u1000"
    proxy.write_text(PROXY)
    proxy.chmod(0o644)  # the user's own file may be lax: the staged copy is not
    script = r"""
stat -c %a "$X509_USER_PROXY" > mode.txt
for i in $(seq 1 150); do grep -q v2 "$X509_USER_PROXY" && break; sleep 0.2; done
cp "$X509_USER_PROXY" seen.txt
"""
    ad = make_job(submit, script, x509userproxy="x509up_u1000", TransferOutput="mode.txt,seen.txt")
    source = gateway.submit(ad)
    routed = gateway.route(source, "Slurm")
    job_dir = Path(gateway.jobs[routed.copy_id]["HpcPullJobDir"])
    staged = job_dir / "x509up_u1000"
    assert stat.S_IMODE(staged.stat().st_mode) == 0o600 and staged.read_text() == PROXY
    assert staged.stat().st_ino != proxy.stat().st_ino, "copied, never hard-linked"
    gateway.run_until(lambda r: r.jobs[source].get("JobStatus") == 2, timeout=60)
    time.sleep(1)
    proxy.write_text(RENEWED)  # condor_qedit / the schedd forwards a renewed proxy
    os.utime(proxy, (time.time() + 5, time.time() + 5))
    gateway.run_until(finished(gateway, source), timeout=90)
    assert (submit / "mode.txt").read_text() == "600\n"
    assert (submit / "seen.txt").read_text() == RENEWED, "the running job saw the renewed proxy"
    logs = [p.read_text(errors="replace") for p in (gateway.workdir / "log").rglob("*") if p.is_file()]
    logs += [c.stderr + c.stdout for c in gateway.calls]
    assert not any("secret-proxy" in text for text in logs), "a credential's content is never logged"


def test_symlinks_made_by_the_job_are_not_followed(gateway: Any, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("gateway secret\n")
    script = f"ln -s {outside} leak.txt\nln -s / root\nmkdir d && ln -s {outside} d/inner\necho ok > fine.txt\n"
    ad = make_job(tmp_path / "submit", script, TransferOutput="leak.txt,root,d,fine.txt")
    source = gateway.submit(ad)
    gateway.route(source, "Slurm")
    gateway.run_until(finished(gateway, source), timeout=90)
    submit = tmp_path / "submit"
    assert (submit / "fine.txt").read_text() == "ok\n"
    assert not (submit / "leak.txt").exists() and not (submit / "root").exists()
    assert not (submit / "d" / "inner").exists()
    errors = gateway.history[source]["HpcPullOutputErrors"]
    assert "leak.txt" in errors and "symbolic link" in errors


def test_output_names_cannot_climb_out_of_the_sandbox_or_iwd(gateway: Any, tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    ad = make_job(tmp_path / "submit", "echo x > a.txt\n", TransferOutput="../escaped.txt,a.txt",
                  TransferOutputRemaps=f"a.txt = {tmp_path}/submit/sub/../a-remapped.txt")
    source = gateway.submit(ad)
    gateway.route(source, "Slurm")
    gateway.run_until(finished(gateway, source), timeout=90)
    assert not target.exists()
    assert "../escaped.txt" in gateway.history[source]["HpcPullOutputErrors"]


def test_job_directories_are_private(gateway: Any, tmp_path: Path) -> None:
    source = gateway.submit(make_job(tmp_path / "submit", "sleep 5\n"))
    routed = gateway.route(source, "Slurm")
    job_dir = Path(gateway.jobs[routed.copy_id]["HpcPullJobDir"])
    for path in (job_dir, job_dir / ".hpcpull", job_dir.parent, job_dir.parent.parent):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    gateway.condor_rm(source)
    gateway.run_until(finished(gateway, source), timeout=60)
