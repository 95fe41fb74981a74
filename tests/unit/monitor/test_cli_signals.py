"""Stop signals, in a child interpreter (a second signal ends the process, which must not be the test run)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

ON_SIGNALS = textwrap.dedent("""
    import asyncio, os, signal
    from monitor.cli import install_stop_signals

    async def main():
        install_stop_signals(lambda: print("stop requested", flush=True))
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0.3)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(10)
        print("still running", flush=True)

    asyncio.run(main())
""")

WHILE_BUILDING = textwrap.dedent("""
    import os, signal, time
    from monitor.cli import exit_on_signals_while_building

    exit_on_signals_while_building(lambda sig: 0)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)  # a model loading in this thread
    print("still running", flush=True)
""")


def run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)


def test_sighup_stops_gracefully_and_a_second_signal_while_stopping_exits_at_once() -> None:
    # found by review: SIGHUP killed the daemon with no drain (a clean exit to systemd, never restarted), and
    # repeated Ctrl-C waited out the whole stop deadline
    done = run(ON_SIGNALS)
    assert done.stdout == "stop requested\n"
    assert done.returncode == 143 and "SIGTERM again while stopping: exiting now" in done.stderr


def test_a_stop_signal_while_the_engine_is_built_exits_at_once_with_one_line() -> None:
    # found by review: without a handler the process died silently, or as PID 1 in a container ignored it
    done = run(WHILE_BUILDING)
    assert (done.returncode, done.stdout) == (0, "")
    assert done.stderr == "stopped by SIGTERM while starting: nothing had started\n"
