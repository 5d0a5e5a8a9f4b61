"""tests/package/test_package.py: the Debian package, end to end.

Builds the .deb with scripts/package, checks its contents, version and
lintian, installs it (dpkg -i), checks the installed binary, man page and
bash completion, then runs chcopier@demo.service against a local test
cluster (scripts/cluster) with the shipped example files (only their ports
moved to the cluster's) and verifies the copy partition by partition. Purges
the package at the end and removes what the package leaves by design (the
system user), so the machine is left as it was found.

With systemd as PID 1 the unit is started with systemctl. Without it (a
container, this sandbox) the unit's ExecStart line is taken from the installed
unit file, its variables substituted from Environment= and the instance's
EnvironmentFile= as systemd would, and run as the unit's User=; the output
says which.

Standalone: needs root, Debian 12 with the packages of scripts/setup, and
nothing from other test files. Run:
    /usr/bin/python3 -m pytest tests/package -v
Env: CHC_KEEP_TMP=1 keeps the cluster directory after a failure.
"""

import os
import pwd
import grp
import re
import shlex
import shutil
import sys
import subprocess
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import workload  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PKG = "chcopier"
UNIT_FILE = Path("/lib/systemd/system/chcopier@.service")
INSTANCE = "demo"
EXAMPLES = Path("/usr/share/doc/chcopier/examples")
ETC = Path("/etc/chcopier")
LOGROOT = Path("/var/log/chcopier")
ROWS_PER_SHARD = 60000


def run(*args, check=True, **kw):
    """subprocess.run with text output captured; on failure the output is in the error."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    r = subprocess.run([str(a) for a in args], check=False, **kw)
    if check and r.returncode != 0:
        raise AssertionError(
            f"{shlex.join(str(a) for a in args)} exited {r.returncode}\n"
            f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
        )
    return r


def say(request, msg):
    """A line in pytest's output even when output is captured."""
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    if tr is None or capman is None:
        print(f"[package] {msg}")
        return
    with capman.global_and_fixture_disabled():
        tr.write_line(f"[package] {msg}")


def meson_version():
    m = re.search(r"project\([^)]*?version:\s*'([^']+)'", (ROOT / "meson.build").read_text(), re.S)
    assert m, "no project(version: ...) in meson.build"
    return m.group(1)


def dpkg(*args):
    """dpkg, retried while another apt/dpkg holds the lock (the machine is shared)."""
    deadline = time.monotonic() + 300
    while True:
        r = run("dpkg", *args, check=False)
        if r.returncode == 0 or "lock" not in (r.stderr + r.stdout).lower():
            return r
        if time.monotonic() > deadline:
            return r
        time.sleep(5)


def installed(pkg):
    r = run("dpkg-query", "-W", "-f=${db:Status-Status}", pkg, check=False)
    return r.returncode == 0 and r.stdout.strip() == "installed"


# --------------------------------------------------------------------- build

@pytest.fixture(scope="module")
def package(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("deb")
    t0 = time.monotonic()
    r = run(ROOT / "scripts" / "package", out)
    say(request, f"scripts/package built in {time.monotonic() - t0:.1f}s: "
                 + " ".join(p.name for p in sorted(out.iterdir())))
    arch = run("dpkg", "--print-architecture").stdout.strip()
    version = meson_version()
    deb = out / f"{PKG}_{version}_{arch}.deb"
    assert deb.is_file(), f"{deb.name} not built:\n{r.stdout}\n{r.stderr}"
    return {"dir": out, "deb": deb, "version": version, "arch": arch}


def test_version_has_one_source(package):
    """meson.build's version is the package's: changelog, control field, file name."""
    changelog = run("dpkg-parsechangelog", "-l", ROOT / "debian" / "changelog", "-S", "Version")
    assert changelog.stdout.strip() == package["version"]
    field = run("dpkg-deb", "-f", package["deb"], "Version").stdout.strip()
    assert field == package["version"]


def test_deb_contents(package):
    listing = run("dpkg-deb", "-c", package["deb"]).stdout
    paths = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
    for p in [
        "/usr/bin/chcopier",
        "/usr/share/man/man1/chcopier.1.gz",
        "/lib/systemd/system/chcopier@.service",
        "/usr/share/bash-completion/completions/chcopier",
        "/usr/share/doc/chcopier/examples/task.xml",
        "/usr/share/doc/chcopier/examples/zookeeper.xml",
        "/usr/share/doc/chcopier/examples/demo.conf",
        "/usr/lib/sysusers.d/chcopier.conf",
        "/usr/lib/tmpfiles.d/chcopier.conf",
        "/usr/share/doc/chcopier/copyright",
    ]:
        assert p in paths, f"{p} missing from {package['deb'].name}:\n{listing}"
    depends = run("dpkg-deb", "-f", package["deb"], "Depends").stdout
    for lib in ["libzookeeper-mt2", "libcurl4", "libxml2", "libuv1", "libc6"]:
        assert re.search(rf"(^|[ ,]){re.escape(lib)}\b", depends), f"{lib} not in Depends: {depends}"


def test_binary_is_stripped_and_hardened(package, tmp_path):
    run("dpkg-deb", "-x", package["deb"], tmp_path)
    sections = run("readelf", "-S", "-W", tmp_path / "usr/bin/chcopier").stdout
    assert ".debug_info" not in sections and ".symtab" not in sections, "binary not stripped"
    header = run("readelf", "-h", "-d", "-W", tmp_path / "usr/bin/chcopier").stdout
    assert "DYN (Position-Independent Executable" in header or "Type:                              DYN" in header, \
        "not PIE"
    assert "BIND_NOW" in header or "FLAGS_1" in header and "NOW" in header, "not linked with -z now"
    relro = run("readelf", "-l", "-W", tmp_path / "usr/bin/chcopier").stdout
    assert "GNU_RELRO" in relro
    dyn = run("readelf", "--dyn-syms", "-W", tmp_path / "usr/bin/chcopier").stdout
    assert "__stack_chk_fail" in dyn, "no stack protector"
    assert re.search(r"__\w+_chk@", dyn), "no _FORTIFY_SOURCE"
    dbgsym = package["dir"] / f"{PKG}-dbgsym_{package['version']}_{package['arch']}.deb"
    assert dbgsym.is_file(), "no -dbgsym package"
    assert ".debug" in run("dpkg-deb", "-c", dbgsym).stdout


def test_lintian_no_errors(request, package):
    changes = package["dir"] / f"{PKG}_{package['version']}_{package['arch']}.changes"
    r = run("lintian", "--allow-root", "-EIL", "+pedantic", "--show-overrides", changes, check=False)
    tags = [line for line in r.stdout.splitlines() if re.match(r"^[EWIPXO]: ", line)]
    say(request, f"lintian (-EIL +pedantic) on {changes.name}: "
                 + (f"{len(tags)} tag(s)" if tags else "no tags at all"))
    for t in tags:
        say(request, f"  {t}")
    errors = [t for t in tags if t.startswith("E: ")]
    assert not errors, "\n".join(errors)
    assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------------- install

@pytest.fixture(scope="module")
def install(request, package):
    if os.geteuid() != 0:
        pytest.skip("installing a package needs root")
    if installed(PKG):
        pytest.skip(f"{PKG} is already installed here; not touching it")
    user_existed = _user_exists("chcopier")
    group_existed = _group_exists("chcopier")
    r = dpkg("-i", package["deb"])
    try:
        assert r.returncode == 0, f"dpkg -i failed:\n{r.stdout}\n{r.stderr}"
        say(request, f"installed {package['deb'].name} with dpkg -i")
        yield package
    finally:
        for f in [f"{INSTANCE}.conf", f"{INSTANCE}.xml", "zookeeper.xml"]:
            (ETC / f).unlink(missing_ok=True)
        r = dpkg("--purge", PKG)
        # Debian leaves system users on purge; this test made it, so it goes.
        if not user_existed and _user_exists("chcopier"):
            run("userdel", "chcopier", check=False)
        if not group_existed and _group_exists("chcopier"):
            run("groupdel", "chcopier", check=False)
        left = [p for p in ["/usr/bin/chcopier", str(UNIT_FILE), str(ETC), str(LOGROOT)]
                if os.path.lexists(p)]
        say(request, f"purged {PKG}: "
                     + ("nothing left" if not left and not installed(PKG) else f"LEFT: {left}"))
        assert r.returncode == 0, f"dpkg --purge failed:\n{r.stdout}\n{r.stderr}"
        assert not installed(PKG) and not left, f"purge left {left}"
        assert _user_exists("chcopier") == user_existed


def _user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def test_installed_version_and_man(install):
    r = run("chcopier", "--version")
    assert r.stdout.strip() == f"chcopier {install['version']}"
    man = run("man", "-P", "cat", "chcopier", env={**os.environ, "MANWIDTH": "100"})
    assert "chcopier - copy ClickHouse tables between clusters" in man.stdout
    assert f"chcopier {install['version']}" in man.stdout, "man page footer lacks the version"
    for section in ["COMMANDS", "OPTIONS", "EXIT STATUS", "FILES", "SYSTEMD", "EXAMPLES"]:
        assert section in man.stdout
    # The installed man page and completion against the installed binary.
    r = run(ROOT / "dist" / "check-docs", "/usr/bin/chcopier", "/usr/share/man/man1/chcopier.1.gz",
            "/usr/share/bash-completion/completions/chcopier")
    assert "agree" in r.stdout
    assert "<base-dir>/chcopier_<YYYYMMDDhhmmss>_<pid>/log.err.log" in man.stdout


def complete(words):
    """Run the installed completion for a command line; words[-1] is the word being typed."""
    script = (
        "source /usr/share/bash-completion/completions/chcopier\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_chcopier\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    return run("bash", "-c", script).stdout.split()


def test_installed_completion(install):
    assert complete(["chcopier", "st"]) == ["status"]
    assert set(complete(["chcopier", ""])) == {"run", "status", "plan", "clean", "upload",
                                               "help", "version"}
    assert complete(["chcopier", "status", "--log-f"]) == ["--log-format"]
    assert complete(["chcopier", "--data-path", ""]) == ["pull", "pipe"]
    assert complete(["chcopier", "--log-level", "=", "de"]) == ["debug"]
    assert complete(["chcopier", "--task-path", ""]) == []
    assert "--max-shard-partition-piece-tries-for-alter" in complete(["chcopier", "--max-s"])


def test_installed_user_dirs_and_unit(install):
    user = pwd.getpwnam("chcopier")
    assert user.pw_uid < 1000 and user.pw_shell.endswith("nologin")
    st = LOGROOT.stat()
    assert pwd.getpwuid(st.st_uid).pw_name == "chcopier"
    assert ETC.is_dir()
    unit = parse_unit(UNIT_FILE)
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartPreventExitStatus"] == ["2"]
    assert unit["User"] == ["chcopier"]
    assert "--log-stdout" in unit["ExecStart"][0]
    assert unit["EnvironmentFile"] == ["/etc/chcopier/%i.conf"]
    # systemd's own check of the unit (works without systemd running).
    r = run("systemd-analyze", "verify", "--man=no", f"chcopier@{INSTANCE}.service", check=False)
    assert r.returncode == 0, r.stdout + r.stderr


# --------------------------------------------------------------- unit → copy

def parse_unit(path):
    """[Service] (and other sections') settings of a unit file: key -> list of values."""
    out = {}
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + " " + lines[i].strip()
            i += 1
        if not line or line[0] in "#;" or line.startswith("["):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def specifiers(s, instance):
    return re.sub(r"%(.)", lambda m: {"i": instance, "I": instance, "%": "%"}[m.group(1)], s)


def read_environment_file(path):
    """systemd's EnvironmentFile= format: KEY=VALUE lines, # and ; comments, quotes."""
    env = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if value[:1] in "\"'":
            value = "".join(shlex.split(value))
        env[key.strip()] = value
    return env


def exec_argv(exec_start, env):
    """ExecStart= as systemd expands it: $X alone is split at whitespace (empty: no
    argument), ${X} is replaced inside its word."""
    cmd = exec_start.lstrip("@-:+!")
    argv = []
    for word in shlex.split(cmd):
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if m:
            argv.extend(env.get(m.group(1), "").split())
            continue
        argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word))
    return argv


def unit_command(instance):
    """(argv, env, user, group, umask) of chcopier@INSTANCE as systemd would run it."""
    unit = parse_unit(UNIT_FILE)
    env = {}
    for e in unit.get("Environment", []):
        for kv in shlex.split(specifiers(e, instance)):
            k, _, v = kv.partition("=")
            env[k] = v
    for f in unit.get("EnvironmentFile", []):
        f = specifiers(f, instance)
        optional = f.startswith("-")
        f = f.lstrip("-")
        if optional and not Path(f).exists():
            continue
        env.update(read_environment_file(f))
    assert len(unit["ExecStart"]) == 1
    argv = exec_argv(specifiers(unit["ExecStart"][0], instance), env)
    umask = int(unit.get("UMask", ["0022"])[0], 8)
    return argv, env, unit["User"][0], unit.get("Group", [unit["User"][0]])[0], umask


def systemd_running():
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


@pytest.fixture
def cluster(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("cluster")
    t0 = time.monotonic()
    r = run(ROOT / "scripts" / "cluster", "up", d, check=False)
    try:
        assert r.returncode == 0, f"scripts/cluster up failed:\n{r.stdout}\n{r.stderr}"
        env = {}
        for line in (d / "cluster.env").read_text().splitlines():
            m = re.match(r"export (\w+)='?([^']*)'?$", line)
            if m:
                env[m.group(1)] = m.group(2)
        say(request, f"cluster up in {time.monotonic() - t0:.1f}s (base port {env['CHC_BASE_PORT']})")
        yield d, env
    finally:
        run(ROOT / "scripts" / "cluster", "down", d, check=False)
        if os.environ.get("CHC_KEEP_TMP") != "1":
            shutil.rmtree(d, ignore_errors=True)


def chq(d, node, sql):
    return run(ROOT / "scripts" / "chq", d, node, sql).stdout


def move_ports(text, base):
    """The examples use the demo's port block 23000-23099; the cluster has its own."""
    return re.sub(r"\b230(\d\d)\b", lambda m: str(base + int(m.group(1))), text)


def partition_sums(d, nodes):
    """partition -> (rows, sum of cityHash64(*) mod 2^64) over NODES."""
    acc = {}
    for n in nodes:
        out = chq(d, n, "SELECT toYYYYMM(EventDate) AS p, count(), sum(cityHash64(*)) "
                        "FROM demo.hits GROUP BY p ORDER BY p FORMAT TSV")
        for line in out.split("\n"):
            if not line.strip():
                continue
            p, c, s = line.split("\t")
            rows, h = acc.get(p, (0, 0))
            acc[p] = (rows + int(c), (h + int(s)) % 2**64)
    return acc


def test_unit_copies_demo(request, install, cluster):
    d, env = cluster
    base = int(env["CHC_BASE_PORT"])

    # Source data, as scripts/demo makes it (smaller).
    for i, node in enumerate(["s1", "s2"], start=1):
        chq(d, node, "CREATE DATABASE IF NOT EXISTS demo")
        chq(d, node, workload.hits_create("demo"))
        chq(d, node, workload.hits_insert("demo", i, ROWS_PER_SHARD))

    # The shipped examples, ports moved: demo.conf as is, it names the others.
    (ETC / "zookeeper.xml").write_text(move_ports((EXAMPLES / "zookeeper.xml").read_text(), base))
    (ETC / f"{INSTANCE}.xml").write_text(move_ports((EXAMPLES / "task.xml").read_text(), base))
    shutil.copy(EXAMPLES / "demo.conf", ETC / f"{INSTANCE}.conf")
    for f in ["zookeeper.xml", f"{INSTANCE}.xml", f"{INSTANCE}.conf"]:
        os.chmod(ETC / f, 0o644)

    unit = f"chcopier@{INSTANCE}.service"
    t0 = time.monotonic()
    if systemd_running():
        say(request, f"systemd is running: systemctl start {unit}")
        run("systemctl", "daemon-reload")
        run("systemctl", "start", unit)
        deadline = time.monotonic() + 600
        while True:
            show = dict(line.split("=", 1) for line in run(
                "systemctl", "show", unit, "-p", "ActiveState,Result,ExecMainStatus"
            ).stdout.split("\n") if "=" in line)
            if show["ActiveState"] in ("inactive", "failed"):
                break
            assert time.monotonic() < deadline, f"{unit} still {show['ActiveState']} after 600 s"
            time.sleep(1)
        journal = run("journalctl", "-u", unit, "--no-pager", "-o", "cat").stdout
        rc = int(show["ExecMainStatus"])
        assert show["Result"] == "success" and rc == 0, f"{unit}: {show}\n{journal[-3000:]}"
        stderr = journal
    else:
        pid1 = Path("/proc/1/comm").read_text().strip()
        argv, uenv, user, group, umask = unit_command(INSTANCE)
        say(request, f"systemd is not running (PID 1 is {pid1!r}): running {unit}'s ExecStart "
                     f"from {UNIT_FILE} directly, as User={user} Group={group}, with "
                     f"Environment= and /etc/chcopier/{INSTANCE}.conf substituted:")
        say(request, f"  {shlex.join(argv)}")
        cmd = ["runuser", "-u", user, "-g", group, "--"] + argv
        penv = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG": "C.UTF-8", **uenv}
        r = subprocess.run(cmd, env=penv, cwd="/", capture_output=True, text=True, timeout=600,
                           preexec_fn=lambda: os.umask(umask))
        rc, stderr = r.returncode, r.stderr
        assert rc == 0, f"exit {rc}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr[-3000:]}"
    say(request, f"{unit} finished with exit 0 in {time.monotonic() - t0:.1f}s")

    # Journal (or stderr) got the log lines, and so did the base directory.
    assert re.search(r"uploaded the task description|already up to date", stderr), stderr[-2000:]
    logdirs = sorted((LOGROOT / INSTANCE).glob("chcopier_*_*"))
    assert logdirs, f"no chcopier_<time>_<pid>/ under {LOGROOT / INSTANCE}"
    log = logdirs[-1] / "log.log"
    assert log.is_file() and (logdirs[-1] / "log.err.log").is_file()
    assert pwd.getpwuid(log.stat().st_uid).pw_name == "chcopier"
    assert log.stat().st_size > 0

    # Verify: every partition's count (and checksum) on the destination equals the source.
    src = partition_sums(d, ["s1", "s2"])
    dst = partition_sums(d, ["d1r1", "d2r1"])
    assert len(src) == 6 and sum(c for c, _ in src.values()) == 2 * ROWS_PER_SHARD
    for p in sorted(src):
        say(request, f"  partition {p}: source {src[p][0]:>6} rows, destination "
                     f"{dst.get(p, (0, 0))[0]:>6} {'ok' if src[p] == dst.get(p) else 'MISMATCH'}")
    assert dst == src

    # A finished task: starting the unit again exits 0 at once, which
    # Restart=on-failure does not restart.
    if not systemd_running():
        r = subprocess.run(["runuser", "-u", user, "-g", group, "--"] + argv, env=penv, cwd="/",
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        # Bad input exits 2 (RestartPreventExitStatus=2): the conf without a task path.
        conf = ETC / f"{INSTANCE}.conf"
        conf.write_text("\n".join(l for l in conf.read_text().splitlines()
                                  if not l.startswith("CHCOPIER_TASK_PATH=")) + "\n")
        argv2, uenv2, *_ = unit_command(INSTANCE)
        r = subprocess.run(["runuser", "-u", user, "-g", group, "--"] + argv2,
                           env={**penv, **uenv2}, cwd="/", capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2, f"exit {r.returncode}: {r.stderr}"
        assert "--task-path" in r.stderr
        say(request, "again on the finished task: exit 0; without CHCOPIER_TASK_PATH: exit 2 "
                     f"({r.stderr.strip()})")
