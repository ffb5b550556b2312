"""The attack suite: what untrusted code tries, run through the real sandbox (bubblewrap, seccomp, hook).

Every attack runs twice, in one batch each (a few seconds in all): with both layers, where the audit
hook must name the violation, and with the confinement alone (``audit_hook=False``), where the file
system, the namespaces and the seccomp filter must still contain it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

import pytest

from imts.agents.sandbox import SandboxResult, SandboxUnavailable, confinement, run_batch, run_python
from imts.core.settings import Settings

SECRET = "sk-imts-attack-suite-secret"


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real things worth stealing: a workspace database and another tenant's dataset shard."""
    root = tmp_path_factory.mktemp("ws")
    db = root / "imts.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table api_keys (hash text)")
        conn.execute("insert into api_keys values ('sha256:feedface')")
    shard = root / "artifacts" / "datasets" / "other-tenant" / "part-0.parquet"
    shard.parent.mkdir(parents=True)
    shard.write_text("tenant B's private rows")
    return {"db": db, "shard": shard}


def attacks(t: dict[str, Path]) -> dict[str, tuple[str, str]]:
    """name -> (code, the violation the audit hook names)."""
    wrap = "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]"
    return {
        "shadow": ("print(open('/etc/shadow').read())", "refused: reading /etc/shadow"),
        "workspace_db": (f"print(open({str(t['db'])!r}, 'rb').read())", f"refused: reading {t['db']}"),
        "other_tenant_shard": (f"print(open({str(t['shard'])!r}).read())", f"refused: reading {t['shard']}"),
        "parent_environ": (
            "import os\nprint(open('/proc/%d/environ' % os.getppid(), 'rb').read())",
            "refused: reading /proc/",
        ),
        "home_root": ("import os\nprint(os.listdir('/root/'))", "refused: listing /root/"),
        "home_dirs": ("import os\nprint(os.listdir('/home'))", "refused: listing /home"),
        "symlink": (
            "import os\nos.symlink('/etc/shadow', 'x')\nprint(open('x').read())",
            "refused: os.symlink /etc/shadow",
        ),
        "proc_self_root": (
            "print(open('/proc/self/root/etc/shadow').read())",
            "refused: reading /proc/self/root/etc/shadow",
        ),
        "subclasses_system": (f"print({wrap}.__init__.__globals__['system']('id'))", "refused: os.system"),
        "gc_ctypes": (
            "import gc\nct = [m for m in gc.get_objects() if type(m).__name__ == 'module' "
            "and m.__name__ == 'ctypes'][0]\nprint(ct.CDLL(None).system(b'id'))",
            "refused: ctypes.dlopen",
        ),
        "importlib_socket": (
            "import importlib\ns = importlib.import_module('_socket')\n"
            "print(s.socket().connect(('127.0.0.1', 5432)))",
            "refused: import _socket",
        ),
        "importlib_posix": (
            "import importlib\nposix = importlib.import_module('posix')\nprint(posix.fork())",
            "refused: os.fork",
        ),
        "fork_bomb": ("import os\nwhile True:\n    os.fork()", "refused: os.fork"),
        "signal_parent": ("import os\nos.kill(os.getppid(), 9)\nprint('sent')", "refused: os.kill"),
        "memory_bomb": ("chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 24))", "memory"),
        "endless_loop": ("while True:\n    pass", "cpu|timeout"),
        "write_outside": ("open('/tmp/imts-pwned', 'w').write('x')", "refused: writing /tmp/imts-pwned"),
        "write_runtime": (
            "import os\nopen(os.__file__, 'a').write('x')",
            f"refused: writing {os.path.realpath(sys.base_prefix)}/",
        ),
    }


@pytest.fixture(scope="module")
def both(targets: dict[str, Path]) -> dict[str, tuple[SandboxResult, SandboxResult]]:
    assert confinement().mode == "bubblewrap", "the attack suite needs bubblewrap (make system)"
    cases = attacks(targets)
    view = (
        "import json, os\nprint(json.dumps([os.listdir('/dev'), os.listdir('/'), os.getuid(), os.getgid()]))"
    )
    codes = [code for code, _ in cases.values()] + ["import os\nprint(sorted(os.environ.items()))", view]
    os.environ["IMTS_CHAT_API_KEY"] = SECRET  # what the issue saw leak: it must not reach the child
    try:
        hooked = run_batch(codes, timeout_s=2, cpu_s=1, memory_mb=256)
        bare = run_batch(codes, timeout_s=2, cpu_s=1, memory_mb=256, audit_hook=False)
    finally:
        del os.environ["IMTS_CHAT_API_KEY"]
    return {name: (hooked[n], bare[n]) for n, name in enumerate([*cases, "environment", "view"])}


@pytest.mark.parametrize("name", list(attacks({"db": Path("/x"), "shard": Path("/x")})))
def test_every_attack_is_contained_and_named(
    name: str, both: dict[str, tuple[SandboxResult, SandboxResult]], targets: dict[str, Path]
) -> None:
    hooked, bare = both[name]
    expected = attacks(targets)[name][1]
    assert not hooked.ok
    assert hooked.violation is not None and (
        hooked.violation.startswith(expected) or hooked.violation in expected.split("|")
    ), hooked
    # The confinement alone: nothing secret is printed, nothing escapes, whatever the code ran into.
    leaked = hooked.stdout + bare.stdout
    for secret in ("root:", "sha256:feedface", "tenant B", SECRET, "uid=", ".ssh", "sent"):
        assert secret not in leaked, (name, bare)
    assert not Path("/tmp/imts-pwned").exists()


def test_the_confinement_alone_hides_the_host(both: dict[str, tuple[SandboxResult, SandboxResult]]) -> None:
    for name in ("shadow", "workspace_db", "other_tenant_shard", "parent_environ", "proc_self_root"):
        assert "FileNotFoundError" in both[name][1].stderr, both[name][1]
    # no /tmp in there at all; the write into the runtime meets a read-only file system
    assert "FileNotFoundError" in both["write_outside"][1].stderr
    assert "Read-only file system" in both["write_runtime"][1].stderr
    # seccomp: no process, no socket, no signal, even with the hook gone
    for name in ("importlib_posix", "fork_bomb", "signal_parent", "importlib_socket"):
        assert "Operation not permitted" in both[name][1].stderr, both[name][1]
    assert both["subclasses_system"][1].stdout.strip() != "0"  # system() could not fork
    assert both["home_root"][1].stdout.strip() == "['.pyenv']" or "FileNotFoundError" in (
        both["home_root"][1].stderr
    )


def test_the_child_sees_a_minimal_file_system_as_nobody(
    both: dict[str, tuple[SandboxResult, SandboxResult]],
) -> None:
    hooked, bare = both["view"]
    assert hooked.violation == "refused: listing /dev"
    devices, top, uid, gid = json.loads(bare.stdout)
    assert sorted(devices) == ["null", "urandom"] and (uid, gid) == (65534, 65534)
    assert set(top) <= {"bin", "dev", "lib", "lib64", "root", "scratch", "usr", "opt"}
    assert not {"etc", "home", "proc", "tmp", "work", "var"} & set(top)


def test_the_parent_environment_never_reaches_the_child(
    both: dict[str, tuple[SandboxResult, SandboxResult]],
) -> None:
    for res in both["environment"]:
        assert res.ok and SECRET not in res.stdout and "IMTS_" not in res.stdout


def test_one_bad_item_in_a_batch_costs_only_its_own_result() -> None:
    codes = ["print(1)", "while True:\n    pass", "x = bytearray(1 << 33)", "raise SystemExit(3)", "print(2)"]
    res = run_batch(codes, timeout_s=1, cpu_s=1)
    assert [r.ok for r in res] == [True, False, False, False, True]
    assert res[0].stdout == "1\n" and res[4].stdout == "2\n"
    assert res[1].violation in ("cpu", "timeout") and res[2].violation == "memory"
    assert res[3].violation == "exit 3" and res[3].stdout == ""


def test_scratch_is_private_to_each_item() -> None:
    first, second = run_batch(["open('note', 'w').write('mine')", "import os\nprint(os.listdir('.'))"])
    assert first.ok and second.stdout.strip() == "[]"


def test_without_confinement_untrusted_code_is_refused_unless_an_admin_opts_in(tmp_path: Path) -> None:
    missing = Settings(workspace=tmp_path, sandbox_bwrap=str(tmp_path / "no-bwrap"))
    assert confinement(missing).mode == "unavailable"
    with pytest.raises(SandboxUnavailable, match=r"IMTS_SANDBOX_UNCONFINED=1.*不受信任"):
        run_python("print(1)", settings=missing)
    opted = missing.model_copy(update={"sandbox_unconfined": True})
    assert confinement(opted).mode == "unconfined"
    ok, shadow = run_batch(["print(6 * 7)", "open('/etc/shadow').read()"], settings=opted)
    assert ok.stdout == "42\n" and shadow.violation == "refused: reading /etc/shadow"
