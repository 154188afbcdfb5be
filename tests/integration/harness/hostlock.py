"""A lock shared by every test process on this machine (pytest-xdist workers and
other runs of the suite): held while a test picks and claims something only one
process may have at a time, such as a free test subnet for a network namespace."""
import contextlib
import fcntl
import os
import tempfile


@contextlib.contextmanager
def host_lock(name):
    """Holds an exclusive flock on <tmp>/<name>.lock for the with-block."""
    path = os.path.join(tempfile.gettempdir(), name + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
