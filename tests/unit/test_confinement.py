"""A spooled job (pull mode, condor_submit -spool) reads and writes nothing outside its Iwd.

The schedd moves such a job's Iwd into SPOOL and keeps the submitter's path in SUBMIT_Iwd
(qmgmt.cpp rewriteSpooledJobAd); Cmd, TransferInput and x509userproxy then name files in the
spooled Iwd (schedd.cpp spoolJobFilesReaper rewrites all three).  Whatever the ad says and
whatever symbolic links the spooled Iwd or the job's own sandbox hold, hpcpull must stage no
byte from outside that Iwd and write none outside it.
Ordinary (non-spooled) jobs keep HTCondor's behaviour: any path the user can read or write.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import classad2
import pytest

from hpcpull.errors import JobRejected, SandboxError
from hpcpull.staging.credentials import refresh_credentials, stage_credentials
from hpcpull.staging.input_sandbox import transfer_input_sandbox
from hpcpull.staging.output_sandbox import transfer_output_sandbox
from hpcpull.state.jobdir import CONTROL_DIR, STDERR, STDOUT

SECRET = "not the job's: a file of the gateway account\n"
OUTSIDE_ERROR = "outside the job's spooled Iwd"


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory of the gateway account that no spooled job may read or write."""
    write(tmp_path / "outside" / "secret.txt", SECRET)
    return tmp_path / "outside"


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def iwd(spool: Path) -> Path:
    """A spooled Iwd as the schedd lays it out, with the job's executable and one input."""
    path = spool / "5" / "0" / "cluster5.proc0.subproc0"
    write(path / "job.sh", "#!/bin/sh\necho hi\n", 0o755)
    write(path / "infile.txt", "infile\n")
    return path


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "scratch" / "alice"


def spooled_ad(iwd: Path, **attrs: object) -> classad2.ClassAd:
    """A job ad after the schedd spooled it: paths relative to the spooled Iwd, SUBMIT_Iwd set."""
    ad = classad2.ClassAd()
    ad["Iwd"] = str(iwd)
    ad["SUBMIT_Iwd"] = "/home/alice/job3"
    ad["ClusterId"] = 5
    ad["ProcId"] = 0
    ad["Cmd"] = "job.sh"
    ad["In"] = "/dev/null"
    for name, value in attrs.items():
        ad[name] = value
    return ad


def stage(ad: classad2.ClassAd, dest: Path, **kwargs: object) -> Path:
    return transfer_input_sandbox(ad, dest, confine_to_iwd=True, **kwargs)  # type: ignore[arg-type]


def staged_bytes(root: Path) -> str:
    """Everything under ``root`` (a scratch tree), to check no secret reached it."""
    return "".join(p.read_text() for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def make_sandbox(root: Path) -> Path:
    """A finished job's sandbox on scratch, with stdout and stderr."""
    box = root / "box"
    write(box / CONTROL_DIR / STDOUT, "out\n")
    write(box / CONTROL_DIR / STDERR, "err\n")
    return box


def outside_files(outside: Path) -> list[str]:
    return sorted(str(p.relative_to(outside)) for p in outside.rglob("*"))


# ------------------------------------------------------------ inputs through symbolic links


@pytest.mark.parametrize("entry", ["link_out", "linkdir/secret.txt", "linkdir/", "linkdir", "./linkdir/../link_out"])
def test_input_through_a_link_leading_outside_is_refused(iwd: Path, dest: Path, outside: Path, entry: str) -> None:
    os.symlink(outside / "secret.txt", iwd / "link_out")
    os.symlink(outside, iwd / "linkdir")
    with pytest.raises(SandboxError) as refused:
        stage(spooled_ad(iwd, TransferInput=f"infile.txt,{entry}"), dest)
    assert refused.value.hold_code == 13
    assert f"input '{entry}' is {OUTSIDE_ERROR} {iwd}" in refused.value.reason
    assert "symbolic link" in refused.value.reason
    assert not (dest / "5" / "0").exists()


@pytest.mark.parametrize("attr", ["Cmd", "In"])
def test_executable_or_stdin_through_a_link_leading_outside_is_refused(
    iwd: Path, dest: Path, outside: Path, attr: str
) -> None:
    os.symlink(outside / "secret.txt", iwd / "link_out")
    with pytest.raises(SandboxError) as refused:
        stage(spooled_ad(iwd, **{attr: "link_out"}), dest)
    assert refused.value.hold_code == 13
    assert f"input 'link_out' is {OUTSIDE_ERROR}" in refused.value.reason
    assert not (dest / "5" / "0").exists()


def test_relative_link_climbing_out_is_refused(iwd: Path, dest: Path, outside: Path) -> None:
    # iwd is spool/5/0/cluster5.proc0.subproc0: four levels up is tmp_path, beside "outside"
    os.symlink("../../../../outside", iwd / "up")
    with pytest.raises(SandboxError) as refused:
        stage(spooled_ad(iwd, TransferInput="up/secret.txt"), dest)
    assert f"input 'up/secret.txt' is {OUTSIDE_ERROR}" in refused.value.reason
    assert "'up'" in refused.value.reason  # names the link that leaves


@pytest.mark.parametrize("entry", ["indir", "indir/"])
def test_link_leading_outside_inside_a_staged_directory_is_refused(
    iwd: Path, dest: Path, outside: Path, entry: str
) -> None:
    write(iwd / "indir" / "a.txt", "a")
    os.symlink(outside / "secret.txt", iwd / "indir" / "leak.txt")
    with pytest.raises(SandboxError) as refused:
        stage(spooled_ad(iwd, TransferInput=entry), dest)
    assert refused.value.hold_code == 13
    assert f"'indir/leak.txt' is {OUTSIDE_ERROR}" in refused.value.reason
    assert not (dest / "5" / "0").exists()


def test_link_to_an_outside_directory_deep_in_a_staged_directory_is_refused(
    iwd: Path, dest: Path, outside: Path
) -> None:
    write(iwd / "indir" / "sub" / "a.txt", "a")
    os.symlink(outside, iwd / "indir" / "sub" / "elsewhere")
    with pytest.raises(SandboxError) as refused:
        stage(spooled_ad(iwd, TransferInput="indir"), dest)
    assert f"'indir/sub/elsewhere' is {OUTSIDE_ERROR}" in refused.value.reason


def test_links_that_stay_inside_the_iwd_are_followed(iwd: Path, dest: Path) -> None:
    write(iwd / "data" / "d.txt", "d")
    write(iwd / "data" / "inner" / "e.txt", "e")
    os.symlink("data/d.txt", iwd / "rel_alias")
    os.symlink(iwd / "data" / "d.txt", iwd / "abs_alias")  # absolute, into the Iwd
    os.symlink("data", iwd / "dlink")
    os.symlink("../d.txt", iwd / "data" / "inner" / "up_alias")  # '..' that stays inside
    os.symlink("dlink/inner/../d.txt", iwd / "chain")  # '..' after a link: the kernel's meaning
    box = stage(spooled_ad(iwd, TransferInput="rel_alias,abs_alias,dlink/inner/e.txt,dlink,chain"), dest)
    for name in ("rel_alias", "abs_alias", "chain"):
        assert (box / name).read_text() == "d", name
        assert stat.S_ISREG(os.lstat(box / name).st_mode), name
    assert (box / "e.txt").read_text() == "e"
    assert (box / "dlink" / "d.txt").read_text() == "d"
    assert (box / "dlink" / "inner" / "up_alias").read_text() == "d"


def test_contents_of_a_linked_directory_inside_the_iwd(iwd: Path, dest: Path) -> None:
    write(iwd / "data" / "d.txt", "d")
    os.symlink("data", iwd / "dlink")
    box = stage(spooled_ad(iwd, TransferInput="dlink/"), dest)
    assert (box / "d.txt").read_text() == "d"


def test_absolute_path_inside_the_spooled_iwd_is_staged(iwd: Path, dest: Path) -> None:
    box = stage(spooled_ad(iwd, Cmd=str(iwd / "job.sh"), TransferInput=str(iwd / "infile.txt")), dest)
    assert (box / "infile.txt").read_text() == "infile\n"
    assert (box / "job.sh").exists()


def test_spooled_inputs_are_still_hard_linked(iwd: Path, dest: Path, spool: Path) -> None:
    write(iwd / "indir" / "a.txt", "a")
    box = stage(spooled_ad(iwd, TransferInput="infile.txt,indir"), dest, spool_dirs=[spool])
    assert os.stat(box / "infile.txt").st_ino == os.stat(iwd / "infile.txt").st_ino
    assert os.stat(box / "indir" / "a.txt").st_ino == os.stat(iwd / "indir" / "a.txt").st_ino


def test_dangling_links_and_links_to_directories_inside_a_tree_are_skipped(iwd: Path, dest: Path) -> None:
    # As in an ordinary job's directory input: no cycle, no missing file stops the job.
    write(iwd / "indir" / "a.txt", "a")
    os.symlink("gone.txt", iwd / "indir" / "dangling")
    os.symlink("..", iwd / "indir" / "parent")
    box = stage(spooled_ad(iwd, TransferInput="indir"), dest)
    assert sorted(p.name for p in (box / "indir").iterdir()) == ["a.txt"]


def test_missing_spooled_input_is_still_not_found(iwd: Path, dest: Path) -> None:
    with pytest.raises(SandboxError) as refused:
        stage(spooled_ad(iwd, TransferInput="nothere.txt"), dest)
    assert refused.value.hold_code == 13 and refused.value.hold_subcode == 2
    assert "not found" in refused.value.reason


# ------------------------------------------------------------ the non-spooled case is unchanged


def test_ordinary_job_may_name_any_path_and_links_leading_anywhere(
    tmp_path: Path, dest: Path, outside: Path
) -> None:
    iwd = tmp_path / "home" / "alice" / "job"
    write(iwd / "job.sh", "#!/bin/sh\n", 0o755)
    os.symlink(outside / "secret.txt", iwd / "link_out")
    os.symlink(outside, iwd / "linkdir")
    ad = spooled_ad(iwd, TransferInput=f"link_out,linkdir/,{outside / 'secret.txt'}")
    del ad["SUBMIT_Iwd"]
    box = transfer_input_sandbox(ad, dest)
    assert (box / "link_out").read_text() == SECRET
    assert (box / "secret.txt").read_text() == SECRET


# ------------------------------------------------------------ credentials


@pytest.mark.parametrize("attr", ["x509userproxy", "ScitokensFile"])
@pytest.mark.parametrize("how", ["absolute", "climbing", "link"])
def test_credential_outside_a_spooled_iwd_is_refused(
    iwd: Path, tmp_path: Path, outside: Path, attr: str, how: str
) -> None:
    os.symlink(outside / "secret.txt", iwd / "x509up_u1000")
    value = {"absolute": str(outside / "secret.txt"),
             "climbing": "../../../../outside/secret.txt",
             "link": "x509up_u1000"}[how]
    job_path = tmp_path / "job"
    job_path.mkdir()
    with pytest.raises(JobRejected) as refused:
        stage_credentials(spooled_ad(iwd, **{attr: value}), job_path)
    assert refused.value.hold_code == 13
    assert f"{attr} '{value}' is {OUTSIDE_ERROR} {iwd}" in refused.value.reason
    assert list(job_path.iterdir()) == []


def test_credential_in_a_spooled_iwd_is_staged(iwd: Path, tmp_path: Path) -> None:
    # The schedd rewrites x509userproxy into the spooled Iwd (as a path there or a basename).
    write(iwd / "x509up_u1000", "proxy v1", 0o600)
    write(iwd / "tokens" / "bt_u1000", "token v1", 0o600)
    os.symlink("tokens/bt_u1000", iwd / "token_link")
    job_path = tmp_path / "job"
    job_path.mkdir()
    ad = spooled_ad(iwd, x509userproxy=str(iwd / "x509up_u1000"), ScitokensFile="token_link")
    assert sorted(stage_credentials(ad, job_path)) == ["token_link", "x509up_u1000"]
    assert (job_path / "x509up_u1000").read_text() == "proxy v1"
    assert (job_path / "token_link").read_text() == "token v1"
    assert stat.S_IMODE(os.stat(job_path / "x509up_u1000").st_mode) == 0o600


def test_credential_confinement_can_be_asked_for_explicitly(iwd: Path, tmp_path: Path, outside: Path) -> None:
    # A job whose Iwd is in SPOOL is spooled even without SUBMIT_Iwd (hpcpull.staging.spool.is_spooled).
    ad = spooled_ad(iwd, x509userproxy=str(outside / "secret.txt"))
    del ad["SUBMIT_Iwd"]
    with pytest.raises(JobRejected, match=OUTSIDE_ERROR):
        stage_credentials(ad, tmp_path, confine_to_iwd=True)


def test_credential_of_a_job_whose_iwd_is_in_spool_is_confined(
    tmp_path: Path, outside: Path, condor_config: Any
) -> None:
    # As hpcpull.staging.spool.is_spooled: an Iwd under the gateway's SPOOL is spooled even without SUBMIT_Iwd.
    condor_config({}, {})
    iwd = tmp_path / "gw" / "spool" / "7" / "0" / "cluster7.proc0.subproc0"
    iwd.mkdir(parents=True)
    ad = spooled_ad(iwd, x509userproxy=str(outside / "secret.txt"))
    del ad["SUBMIT_Iwd"]
    job_path = tmp_path / "job"
    job_path.mkdir()
    with pytest.raises(JobRejected, match=OUTSIDE_ERROR):
        stage_credentials(ad, job_path)
    assert refresh_credentials(ad, job_path) == []
    assert list(job_path.iterdir()) == []


def test_credential_of_an_ordinary_job_may_be_anywhere(tmp_path: Path, outside: Path) -> None:
    iwd = tmp_path / "home" / "alice" / "job"
    iwd.mkdir(parents=True)
    ad = spooled_ad(iwd, x509userproxy=str(outside / "secret.txt"))
    del ad["SUBMIT_Iwd"]
    job_path = tmp_path / "job"
    job_path.mkdir()
    assert stage_credentials(ad, job_path) == ["secret.txt"]
    assert (job_path / "secret.txt").read_text() == SECRET


def test_renewed_credential_swapped_for_a_link_leading_outside_is_not_copied(
    iwd: Path, tmp_path: Path, outside: Path
) -> None:
    proxy = write(iwd / "x509up_u1000", "proxy v1", 0o600)
    job_path = tmp_path / "job"
    job_path.mkdir()
    ad = spooled_ad(iwd, x509userproxy="x509up_u1000")
    stage_credentials(ad, job_path)
    proxy.unlink()
    os.symlink(outside / "secret.txt", proxy)
    st = os.stat(outside / "secret.txt")
    os.utime(outside / "secret.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert refresh_credentials(ad, job_path) == []
    assert (job_path / "x509up_u1000").read_text() == "proxy v1"


def test_renewed_credential_in_a_spooled_iwd_is_copied_again(iwd: Path, tmp_path: Path) -> None:
    proxy = write(iwd / "x509up_u1000", "proxy v1", 0o600)
    job_path = tmp_path / "job"
    job_path.mkdir()
    ad = spooled_ad(iwd, x509userproxy="x509up_u1000")
    stage_credentials(ad, job_path)
    write(proxy, "proxy v2", 0o600)
    st = os.stat(proxy)
    os.utime(proxy, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert refresh_credentials(ad, job_path) == ["x509up_u1000"]
    assert (job_path / "x509up_u1000").read_text() == "proxy v2"


# ------------------------------------------------------------ outputs through links in the Iwd


def returned(iwd: Path, box: Path, **attrs: object) -> list[str]:
    """Return ``box`` into the spooled Iwd; the report's error lines."""
    report = transfer_output_sandbox(spooled_ad(iwd, **attrs), box, confine_to_iwd=True)
    return report.errors


def test_remap_through_a_link_leading_outside_is_not_written(iwd: Path, tmp_path: Path, outside: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "out.txt", "job output")
    write(box / "ok.txt", "ok")
    os.symlink(outside, iwd / "victimlink")
    errors = returned(iwd, box, TransferOutput="out.txt,ok.txt",
                      TransferOutputRemaps="out.txt = victimlink/through.txt")
    assert outside_files(outside) == ["secret.txt"]
    assert len(errors) == 1
    assert errors[0].startswith("output 'out.txt'") and OUTSIDE_ERROR in errors[0]
    assert "would be written to victimlink/through.txt" in errors[0] and "'victimlink'" in errors[0]
    assert (iwd / "ok.txt").read_text() == "ok"


@pytest.mark.parametrize("attr", ["Out", "Err"])
def test_stdout_stderr_through_a_link_leading_outside_are_not_written(
    iwd: Path, tmp_path: Path, outside: Path, attr: str
) -> None:
    box = make_sandbox(tmp_path)
    os.symlink(outside, iwd / "victimlink")
    errors = returned(iwd, box, TransferOutput="", **{attr: f"victimlink/{attr.lower()}.txt"})
    assert outside_files(outside) == ["secret.txt"]
    assert len(errors) == 1 and errors[0].startswith(f"{attr} 'victimlink/") and OUTSIDE_ERROR in errors[0]


def test_directory_output_onto_a_link_leading_outside_is_not_written(
    iwd: Path, tmp_path: Path, outside: Path
) -> None:
    box = make_sandbox(tmp_path)
    write(box / "res" / "r.txt", "result")
    os.symlink(outside, iwd / "res")
    errors = returned(iwd, box, TransferOutput="res")
    assert outside_files(outside) == ["secret.txt"]
    assert len(errors) == 1 and errors[0].startswith("output 'res'") and OUTSIDE_ERROR in errors[0]


def test_file_output_onto_a_link_replaces_the_link(iwd: Path, tmp_path: Path, outside: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "res", "result")
    os.symlink(outside / "secret.txt", iwd / "res")
    assert returned(iwd, box, TransferOutput="res") == []
    assert (outside / "secret.txt").read_text() == SECRET
    assert not (iwd / "res").is_symlink() and (iwd / "res").read_text() == "result"


def test_link_leading_outside_deep_in_a_merged_directory_is_not_written(
    iwd: Path, tmp_path: Path, outside: Path
) -> None:
    box = make_sandbox(tmp_path)
    write(box / "res" / "top.txt", "top")
    write(box / "res" / "sub" / "deep.txt", "deep")
    (iwd / "res").mkdir()
    os.symlink(outside, iwd / "res" / "sub")
    errors = returned(iwd, box, TransferOutput="res")
    assert outside_files(outside) == ["secret.txt"]
    assert (iwd / "res" / "top.txt").read_text() == "top"
    assert len(errors) == 1 and errors[0].startswith("output 'res/sub'") and OUTSIDE_ERROR in errors[0]


def test_links_in_the_iwd_that_stay_inside_are_followed(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "out.txt", "job output")
    write(box / "res" / "r.txt", "result")
    (iwd / "store").mkdir()
    os.symlink("store", iwd / "results")
    os.symlink(iwd / "store", iwd / "res")  # absolute, into the Iwd
    errors = returned(iwd, box, TransferOutput="out.txt,res", Out="results/job.out",
                      TransferOutputRemaps="out.txt = results/out.txt")
    assert errors == []
    assert (iwd / "store" / "out.txt").read_text() == "job output"
    assert (iwd / "store" / "job.out").read_text() == "out\n"
    assert (iwd / "store" / "r.txt").read_text() == "result"


def test_missing_output_directories_are_created_inside_the_iwd(iwd: Path, tmp_path: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "out.txt", "job output")
    assert returned(iwd, box, TransferOutput="out.txt", TransferOutputRemaps="out.txt = a/b/out.txt") == []
    assert (iwd / "a" / "b" / "out.txt").read_text() == "job output"


# ------------------------------------------------------------ links the payload made in its sandbox


def test_links_made_by_the_payload_are_never_followed(iwd: Path, tmp_path: Path, outside: Path) -> None:
    box = make_sandbox(tmp_path)
    write(box / "res" / "r.txt", "result")
    os.symlink(outside / "secret.txt", box / "leak.txt")
    os.symlink(outside, box / "ldir")
    os.symlink(outside / "secret.txt", box / "res" / "leak.txt")
    os.symlink(outside, box / "res" / "ldir")
    (box / CONTROL_DIR / STDERR).unlink()
    os.symlink(outside / "secret.txt", box / CONTROL_DIR / STDERR)
    errors = returned(iwd, box, TransferOutput="leak.txt,ldir,ldir/secret.txt,res,res/",
                      Out="job.out", Err="job.err")
    assert len(errors) == 4, errors  # leak.txt, ldir, ldir/secret.txt, Err; inside res: skipped
    assert all("symbolic link" in line for line in errors), errors
    iwd_bytes = "".join(p.read_text() for p in iwd.rglob("*") if p.is_file())
    assert SECRET not in iwd_bytes
    assert (iwd / "res" / "r.txt").read_text() == "result" and (iwd / "r.txt").read_text() == "result"
    assert not any(p.is_symlink() for p in iwd.rglob("*"))


def test_control_directory_replaced_by_a_link_is_not_followed(iwd: Path, tmp_path: Path, outside: Path) -> None:
    box = make_sandbox(tmp_path)
    write(outside / STDOUT, SECRET)
    os.rename(box / CONTROL_DIR, tmp_path / "moved")
    os.symlink(outside, box / CONTROL_DIR)
    errors = returned(iwd, box, TransferOutput="", Out="job.out")
    assert not (iwd / "job.out").exists()
    assert len(errors) == 1 and errors[0].startswith("Out 'job.out'") and "symbolic link" in errors[0]


def test_links_made_by_the_payload_are_not_returned_when_detected(iwd: Path, tmp_path: Path, outside: Path) -> None:
    box = make_sandbox(tmp_path)
    os.symlink(outside / "secret.txt", box / "leak.txt")
    write(box / "new.txt", "new")
    report = transfer_output_sandbox(spooled_ad(iwd), box, confine_to_iwd=True)
    assert report.returned == ["new.txt"]
    assert report.errors == ["output 'leak.txt' is a symbolic link; not returned"]
    assert not os.path.lexists(iwd / "leak.txt")


def test_ordinary_job_outputs_follow_the_users_links(tmp_path: Path, outside: Path) -> None:
    # Not spooled: the Iwd is the submitter's own directory, written as the user, as the shadow does.
    iwd = tmp_path / "home" / "alice" / "job"
    iwd.mkdir(parents=True)
    os.symlink(outside, iwd / "results")
    box = make_sandbox(tmp_path)
    write(box / "out.txt", "job output")
    ad = spooled_ad(iwd, TransferOutput="out.txt", TransferOutputRemaps="out.txt = results/out.txt")
    del ad["SUBMIT_Iwd"]
    report = transfer_output_sandbox(ad, box)
    assert report.errors == []
    assert (outside / "out.txt").read_text() == "job output"
