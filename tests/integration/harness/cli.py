"""Running the binary directly (no daemon)."""
import subprocess


def run_bin(binary, *args, timeout=10):
    """Run `binary args...`; returns CompletedProcess with text output."""
    return subprocess.run([binary] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def dig(*args, timeout=10):
    """Run dig with the given args (add @server -p port yourself)."""
    return subprocess.run(["dig"] + list(args), capture_output=True, text=True, timeout=timeout)


def kdig(*args, timeout=10):
    return subprocess.run(["kdig"] + list(args), capture_output=True, text=True, timeout=timeout)
