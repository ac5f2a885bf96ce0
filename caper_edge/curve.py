"""CURVE keys for the ZeroMQ sockets, and the rule that decides when they are required.

Off loopback the basket events carry money, so a socket bound to anything but loopback
(127.0.0.0/8, ::1, ``localhost``) or a host-local transport (``ipc://``, ``inproc://``) must use
CURVE: the server authenticates clients by their public key (ZAP, via pyzmq's
``ThreadAuthenticator``) and traffic is encrypted.

``caper-edge keys DIR`` lays keys out so that each side gets only its own folder::

    DIR/server/server.key            server public key   (give to clients)
    DIR/server/server.key_secret     server secret key   (stays on the cart, mode 0600)
    DIR/authorized_clients/NAME.key  public keys of the clients the server accepts
    DIR/client-NAME/client.key       client public key
    DIR/client-NAME/client.key_secret
    DIR/client-NAME/server.key       copy of the server public key

The cart's ``[publish] curve_keys = DIR`` reads ``server/`` and ``authorized_clients/``;
``caper-edge listen --curve-keys DIR/client-NAME`` reads one client folder.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from .errors import ConfigError

__all__ = [
    "endpoint_is_local",
    "endpoint_host",
    "ServerKeys",
    "ClientKeys",
    "make_keys",
    "load_server_keys",
    "load_client_keys",
]

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def endpoint_host(endpoint: str) -> str:
    """The host part of a ``tcp://HOST:PORT`` endpoint ('' for other transports)."""
    transport, sep, rest = endpoint.partition("://")
    if not sep:
        raise ConfigError(f"endpoint {endpoint!r}: expected transport://address, e.g. tcp://127.0.0.1:5556")
    if transport not in ("tcp", "ipc", "inproc"):
        raise ConfigError(f"endpoint {endpoint!r}: transport {transport!r} is not supported (tcp, ipc, inproc)")
    if transport != "tcp":
        return ""
    if ";" in rest:  # tcp://source;destination: the destination is what we bind/connect
        rest = rest.rsplit(";", 1)[1]
    if rest.startswith("["):
        host, bracket, _ = rest[1:].partition("]")
        if not bracket:
            raise ConfigError(f"endpoint {endpoint!r}: unbalanced [ in the IPv6 address")
        return host
    host, colon, port = rest.rpartition(":")
    if not colon or not host:
        raise ConfigError(f"endpoint {endpoint!r}: expected tcp://HOST:PORT")
    return host


def endpoint_is_local(endpoint: str) -> bool:
    """True for loopback TCP (127.0.0.0/8, ::1, localhost) and for ipc:// and inproc://.

    ``*``, ``0.0.0.0``, ``::``, any other address and interface names (``eth0``) are not local.
    """
    if not endpoint.startswith("tcp://"):
        endpoint_host(endpoint)  # validates the transport
        return True
    host = endpoint_host(endpoint).split("%", 1)[0]  # fe80::1%eth0 -> fe80::1
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', interface names, DNS names: may be reachable from outside


@dataclass(frozen=True)
class ServerKeys:
    public: bytes
    secret: bytes
    authorized_dir: Path


@dataclass(frozen=True)
class ClientKeys:
    public: bytes
    secret: bytes
    server_public: bytes


def _load_secret(path: Path, what: str) -> tuple[bytes, bytes]:
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist (make keys with `caper-edge keys DIR`)")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc}") from None
    if not secret:
        raise ConfigError(f"{what} {path} holds no secret key")
    return public, secret


def load_server_keys(directory: str | os.PathLike[str]) -> ServerKeys:
    root = Path(directory).expanduser()
    public, secret = _load_secret(root / "server" / "server.key_secret", "CURVE server key")
    authorized = root / "authorized_clients"
    if not authorized.is_dir() or not any(authorized.glob("*.key")):
        raise ConfigError(f"CURVE folder {authorized} holds no client public keys (*.key): nobody could connect")
    return ServerKeys(public, secret, authorized)


def load_client_keys(directory: str | os.PathLike[str]) -> ClientKeys:
    root = Path(directory).expanduser()
    public, secret = _load_secret(root / "client.key_secret", "CURVE client key")
    server_file = root / "server.key"
    if not server_file.is_file():
        raise ConfigError(f"CURVE server public key {server_file} does not exist")
    try:
        server_public, _ = zmq.auth.load_certificate(server_file)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"CURVE server public key {server_file} cannot be read: {exc}") from None
    return ClientKeys(public, secret, server_public)


@contextlib.contextmanager
def _private_umask():
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def make_keys(directory: str | os.PathLike[str], client: str = "client") -> dict[str, Path]:
    """Create the server key pair (unless present) and one client key pair named ``client``.

    Existing keys are never overwritten: run again with another ``client`` name to authorize
    another client. Returns the paths made, by role.
    """
    if not zmq.has("curve"):
        raise ConfigError("this libzmq was built without CURVE support")
    if not _CLIENT_NAME.match(client):
        raise ConfigError(f"client name {client!r}: expected 1-64 letters, digits, '.', '_' or '-'")
    root = Path(directory).expanduser()
    server_dir, authorized, client_dir = root / "server", root / "authorized_clients", root / f"client-{client}"
    if client_dir.exists() or (authorized / f"{client}.key").exists():
        raise ConfigError(f"client {client!r} already has keys in {root}; choose another name")
    made: dict[str, Path] = {}
    with _private_umask():
        for d in (root, server_dir, authorized, client_dir):
            d.mkdir(parents=True, exist_ok=True)
        if not (server_dir / "server.key_secret").exists():
            zmq.auth.create_certificates(server_dir, "server")
            made["server_secret"] = server_dir / "server.key_secret"
        zmq.auth.create_certificates(client_dir, "client")
        shutil.copyfile(server_dir / "server.key", client_dir / "server.key")
        shutil.copyfile(client_dir / "client.key", authorized / f"{client}.key")
    for secret in (server_dir / "server.key_secret", client_dir / "client.key_secret"):
        secret.chmod(0o600)
    made.update(client_dir=client_dir, authorized_key=authorized / f"{client}.key", server_public=server_dir / "server.key")
    return made
