"""Free loopback ports."""

import socket


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
