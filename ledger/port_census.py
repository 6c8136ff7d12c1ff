"""What the kernel shows of a TCP port's sockets (Linux /proc): how many listen on it and which
process holds each connection. For the tests and the API benchmark of `koa serve --workers`; kept
free of heavy imports, since the benchmarks' parent process must stay small."""

from __future__ import annotations

import os
from pathlib import Path


def _socket_inodes(port: int, state: str) -> set[str]:
    """Inodes of the TCP sockets whose local port is `port` in `state` (01 established, 0A listen)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                inodes.add(fields[9])
    return inodes


def listening_socket_count(port: int) -> int:
    return len(_socket_inodes(port, "0A"))


def connections_by_process(port: int) -> dict[int, int]:
    """Established connections on the server's side of `port`, counted by the process holding each:
    how the clients were shared among the server's processes. Empty where /proc cannot be read."""
    inodes = _socket_inodes(port, "01")
    counts: dict[int, int] = {}
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            links = [os.readlink(fd) for fd in fd_dir.iterdir()]
        except OSError:  # another user's process, or one that ended meanwhile
            continue
        held = sum(1 for link in links if link.startswith("socket:[") and link[8:-1] in inodes)
        if held:
            counts[int(fd_dir.parent.name)] = held
    return counts
