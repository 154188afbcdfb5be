"""Free port selection on loopback (UDP and TCP free on every given host), and whether a
started server holds its port itself."""
import os
import socket


def _free_on(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(family, kind)
        try:
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port(*hosts):
    """A port that is free for UDP and TCP on all hosts (default 127.0.0.1).
    There is a small race until the user binds it; callers retry on failure."""
    hosts = hosts or ("127.0.0.1",)
    for _ in range(100):
        family = socket.AF_INET6 if ":" in hosts[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        if all(_free_on(h, port) for h in hosts):
            return port
    raise RuntimeError("no free port on %s" % (hosts,))


def udp_port_taken(host, port):
    """True if something is bound to host:port/udp (used as a readiness check)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        s.bind((host, port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def holds_port(pid, port):
    """Whether process `pid` holds a socket on `port` (UDP, or TCP listening; any local
    address), from /proc; None when its descriptors cannot be read. A readiness check
    that got an answer needs it: between free_port and the server's bind another
    worker's server can take the port, and it answers too."""
    inodes = set()
    for table, listening in (("udp", None), ("udp6", None), ("tcp", "0A"), ("tcp6", "0A")):
        try:
            with open("/proc/net/" + table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and int(cols[1].rsplit(":", 1)[1], 16) == port \
                    and listening in (None, cols[3]):
                inodes.add("socket:[%s]" % cols[9])
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) in inodes:
                return True
        except OSError:
            continue
    return False


def started_on(proc, port):
    """True unless /proc shows that `proc` does not hold `port` (see holds_port)."""
    return holds_port(proc.pid, port) is not False
