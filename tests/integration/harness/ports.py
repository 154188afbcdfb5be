"""Free port selection on loopback (UDP and TCP free on every given host)."""
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
