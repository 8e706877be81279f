"""Process management: a start that fails says why, a stop ends the whole process group, nothing is left behind."""

from __future__ import annotations

import os
import socket
import sys
import time

import pytest

from solution.gateway import procs
from solution.gateway.procs import ManagedProcess, ProcessStartError, ServerSpec, free_port, start_fleet

pytestmark = pytest.mark.stage8

PY = sys.executable


def _gone(pid: int) -> bool:
    """True once ``pid`` no longer exists (or is a zombie waiting for a parent that is not us)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")
    except FileNotFoundError:
        return True


def test_a_process_that_dies_while_starting_raises_with_its_stderr() -> None:
    code = "import sys; print('loading weights'); sys.stderr.write('CUDA out of memory: boom-4711\\n'); sys.exit(3)"
    proc = ManagedProcess([PY, "-c", code], name="dies", ready_url=f"http://127.0.0.1:{free_port()}/health")
    with pytest.raises(ProcessStartError, match="dies exited with code 3 while starting") as caught:
        proc.start()
    assert "boom-4711" in str(caught.value) and "loading weights" in caught.value.output
    assert caught.value.returncode == 3 and isinstance(caught.value, RuntimeError)
    assert not proc.alive() and proc not in procs.live_processes()


def test_a_process_that_never_gets_ready_is_stopped_after_the_timeout() -> None:
    proc = ManagedProcess([PY, "-c", "import time; print('stuck', flush=True); time.sleep(60)"], name="stuck",
                          ready_url=f"http://127.0.0.1:{free_port()}/health", ready_timeout=0.5)  # fmt: skip
    with pytest.raises(ProcessStartError, match="did not answer 200 .* within 0.5 s") as caught:
        proc.start()
    assert caught.value.returncode is None and "stuck" in caught.value.output
    assert not proc.alive()


def test_stop_kills_the_whole_group_even_when_the_leader_ignores_sigterm(wait_until) -> None:
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = ManagedProcess([PY, "-c", code], name="stubborn").start()
    try:
        child = int(wait_until(lambda: proc.output_tail().strip(), 10.0, "the child's pid"))
        assert proc.alive() and proc in procs.live_processes() and not _gone(child)
        start = time.monotonic()
        code_ = proc.stop(grace=0.3)
        assert code_ == -9 and time.monotonic() - start < 5.0  # SIGTERM ignored: SIGKILL after the grace
        assert not proc.alive() and proc not in procs.live_processes()
        wait_until(lambda: _gone(child), 5.0, "the child of the stopped process to end")
    finally:
        proc.stop(grace=0.1)
    assert proc.stop() == -9  # idempotent


def test_a_clean_sigterm_stop_and_the_context_manager() -> None:
    with ManagedProcess([PY, "-c", "import time; time.sleep(60)"], name="sleeper") as proc:
        pid = proc.pid
        assert pid is not None and proc.alive() and os.getpgid(pid) == pid  # its own process group
    assert proc.returncode == -15 and not proc.alive()


def test_the_output_stays_readable_after_stop(wait_until) -> None:
    proc = ManagedProcess([PY, "-c", "print('ready', flush=True); import time; time.sleep(60)"], name="talker").start()
    try:
        wait_until(lambda: "ready" in proc.output_tail(), 10.0, "the process to print")
    finally:
        proc.stop()
    assert proc.output_tail().strip() == "ready"


@pytest.mark.slow  # a server start; the bad-preset test below covers a real server's start failure
def test_an_inference_server_that_cannot_bind_reports_the_address_in_use() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        spec = ServerSpec("s1")
        proc = ManagedProcess(spec.argv(port), name="server s1", ready_url=f"http://127.0.0.1:{port}/live",
                              env=procs._repo_env(), ready_timeout=15.0)  # fmt: skip
        # The holder accepts connections, so /live gets no HTTP answer: the server dies on bind first.
        with pytest.raises(ProcessStartError) as caught:
            proc.start()
    assert "address already in use" in caught.value.output.lower()


def test_a_bad_preset_fails_the_fleet_and_stops_the_servers_already_started() -> None:
    before = set(procs.live_processes())
    with pytest.raises(ProcessStartError, match="unknown GPU preset 'b9000'"):
        start_fleet([ServerSpec("ok"), ServerSpec("bad", gpu="b9000")])
    assert set(procs.live_processes()) == before


@pytest.mark.slow  # 3 server starts (~2.5 s on 2 busy cores); the fleet fixture starts fleets in parallel too
def test_a_fleet_starts_servers_in_parallel_and_stops_them_all() -> None:
    start = time.monotonic()
    fleet = start_fleet([ServerSpec(f"p{k}", capacity=2) for k in range(3)])
    took = time.monotonic() - start
    try:
        ports = list(fleet.ports.values())
        assert all(procs.port_open(p) for p in ports) and all(fleet.alive().values())
        assert set(fleet.urls) == {"p0", "p1", "p2"} and len(set(ports)) == 3
    finally:
        fleet.stop()
    assert not any(procs.port_open(p) for p in ports) and not any(fleet.alive().values())
    print(f"3 servers started in {took:.2f} s")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"argv": []}, ValueError),
        ({"argv": "python -c pass"}, TypeError),
        ({"argv": [PY, 3]}, ValueError),
        ({"argv": [PY], "name": ""}, ValueError),
        ({"argv": [PY], "ready_timeout": 0}, ValueError),
        ({"argv": [PY], "ready_timeout": True}, TypeError),
        ({"argv": [PY], "ports": [0]}, ValueError),
    ],
)
def test_managed_process_refuses_bad_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    kwargs = {"name": "x", **kwargs}
    with pytest.raises(error):
        ManagedProcess(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"server_id": ""}, ValueError),
        ({"server_id": "s", "capacity": 0}, ValueError),
        ({"server_id": "s", "time_scale": 0}, ValueError),
        ({"server_id": "s", "time_scale": "fast"}, TypeError),
        ({"server_id": "s", "startup_seconds": -1}, ValueError),
        ({"server_id": "s", "seed": True}, TypeError),
        ({"server_id": "s", "warmup_speed": 1.5}, ValueError),
        ({"server_id": "s", "warmup_steps": 0}, ValueError),
    ],
)
def test_server_spec_refuses_bad_values(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        ServerSpec(**kwargs)  # type: ignore[arg-type]


def test_start_fleet_refuses_bad_specs() -> None:
    with pytest.raises(TypeError):
        start_fleet([])
    with pytest.raises(ValueError, match="unique"):
        start_fleet([ServerSpec("a"), ServerSpec("a")])


def test_a_process_started_twice_is_refused() -> None:
    with ManagedProcess([PY, "-c", "import time; time.sleep(60)"], name="once") as proc:
        with pytest.raises(RuntimeError, match="already started"):
            proc.start()


def test_a_process_dies_with_its_parent_even_when_the_parent_is_killed(wait_until) -> None:
    """SIGKILL of the parent runs no exit hook: the parent-death signal still ends the child."""
    parent_code = (
        "import sys, time\n"
        "from solution.gateway.procs import ManagedProcess\n"
        "child = ManagedProcess([sys.executable, '-c', 'import time; time.sleep(60)'], name='orphan-to-be').start()\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = ManagedProcess([PY, "-c", parent_code], name="parent", env=procs._repo_env()).start()
    try:
        child = int(wait_until(lambda: parent.output_tail().strip(), 10.0, "the child's pid"))
        assert not _gone(child)
        os.kill(parent.pid, 9)  # type: ignore[arg-type]
        wait_until(lambda: _gone(child), 5.0, "the child of a killed parent to die")
    finally:
        parent.stop(grace=0.1)
