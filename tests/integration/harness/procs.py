"""Ending the processes a test started: SIGTERM, then SIGKILL if it lingers."""
import signal
import subprocess


def terminate(proc, timeout=5):
    """Stops `proc` (a subprocess.Popen) if it still runs and reaps it."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
