"""Listening addresses of ``lrc serve`` and ``lrc gateway``: checked before anything starts, and one
way to say that one cannot be used."""

from __future__ import annotations

import errno
import socket

import typer


def cannot_listen(host: str, port: int, exc: OSError) -> typer.Exit:
    """Say on stderr why ``host:port`` cannot be listened on; the exit to raise: 2 for a host that is
    no address of this machine (a mistake in the command), 1 for a port in use or refused."""
    typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
    mistake = isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL
    return typer.Exit(2 if mistake else 1)


def check_listen(host: str, port: int) -> None:
    """Bind ``host:port`` once and let it go, so that a bad address fails the command before its
    workers start (see :func:`cannot_listen` for the exit codes)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as exc:
        raise cannot_listen(host, port, exc) from exc
