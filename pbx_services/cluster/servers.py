"""Server service: the servers of the cluster. The Call Managers send calls to the media and
application (IVR, queue, meeting) servers, and watch each other's rows (role callmanager).

Adding a server takes effect without a restart: the Call Managers read the list again
every few seconds. Disabling one stops new calls to it; its calls go on. A Call Manager
cannot be disabled: it serves calls while it holds the VIP.
"""

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import AlreadyExists, ServerDao
from pbx_services.cluster.models import Server, ServerRole
from pbx_services.cluster.validation import InvalidValue, validate_host

NAME_MAX_LENGTH = 64
WEIGHT_MAX = 1000
WORKERS_MAX = 256


@dataclass(frozen=True, slots=True)
class ServerEntry:
    """A server as the Call Manager uses it: a detached, immutable copy of its row."""

    name: str
    role: ServerRole
    host: str
    port: int
    workers: int
    weight: int
    enabled: bool
    http_port: int | None = None
    """Its /health, /metrics and control API (`runtime.control`) on `host`; None: not known."""

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        """Where each of its workers answers: port, port + 1, ..."""
        return [(self.host, self.port + i) for i in range(self.workers)]


def _entry(server: Server) -> ServerEntry:
    return ServerEntry(name=server.name, role=server.role, host=server.host, port=server.port,
                       workers=server.workers, weight=server.weight, enabled=server.enabled,
                       http_port=server.http_port)


def _check(name: str, port: int, workers: int, weight: int, http_port: int | None = None) -> None:
    if not name or len(name) > NAME_MAX_LENGTH or not name.replace("-", "").replace("_", "").replace(
            ".", "").isalnum():
        raise InvalidValue(f"server name {name[:70]!r} must be 1 to {NAME_MAX_LENGTH} letters, digits, "
                           "'.', '_' or '-'")
    if not 1 <= port <= 65535:
        raise InvalidValue(f"port {port} is not between 1 and 65535")
    if not 1 <= workers <= WORKERS_MAX or port + workers - 1 > 65535:
        raise InvalidValue(f"workers {workers} is not between 1 and {WORKERS_MAX} (ports from {port})")
    if not 1 <= weight <= WEIGHT_MAX:
        raise InvalidValue(f"weight {weight} is not between 1 and {WEIGHT_MAX}")
    if http_port is not None and not 1 <= http_port <= 65535:
        raise InvalidValue(f"HTTP port {http_port} is not between 1 and 65535")


class ServerService:
    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add_server(self, name: str, *, role: ServerRole, host: str, port: int, workers: int = 1,
                   weight: int = 1, enabled: bool = True, http_port: int | None = None) -> ServerEntry:
        _check(name, port, workers, weight, http_port)
        host = validate_host(host)
        with self._sessions.begin() as session:
            servers = ServerDao(session=session)
            if servers.find_by(name=name) is not None:
                raise AlreadyExists(f"server {name} already exists")
            try:
                return _entry(servers.create(Server(name=name, role=role, host=host, port=port,
                                                    workers=workers, weight=weight, enabled=enabled,
                                                    http_port=http_port)))
            except IntegrityError:  # added by someone else since the check above
                raise AlreadyExists(f"server {name} already exists") from None

    def ensure_server(self, name: str, *, role: ServerRole, host: str, port: int, workers: int = 1,
                      http_port: int | None = None) -> ServerEntry:
        """The server `name`, created or moved to `host:port` (the all-in-one's own media server)."""
        _check(name, port, workers, 1, http_port)
        with self._sessions.begin() as session:
            server = ServerDao(session=session).find_by(name=name)
            if server is None:
                server = ServerDao(session=session).create(Server(
                    name=name, role=role, host=host, port=port, workers=workers, weight=1,
                    http_port=http_port))
            else:
                server.role, server.host, server.port, server.workers = role, host, port, workers
                server.http_port = http_port
            return _entry(server)

    def set_enabled(self, name: str, enabled: bool) -> ServerEntry:
        """Raises NotFound, or InvalidValue for a Call Manager."""
        with self._sessions.begin() as session:
            server = ServerDao(session=session).get_by(name=name)
            if not server.role.can_be_disabled:
                raise InvalidValue(f"{server.name} is a Call Manager, which takes calls while it holds the "
                                   "VIP, not when chosen: stop its service (or keepalived) to take it out")
            server.enabled = enabled
            return _entry(server)

    def delete_server(self, name: str) -> None:
        with self._sessions.begin() as session:
            servers = ServerDao(session=session)
            servers.delete(servers.get_by(name=name))

    def list_servers(self, *, role: ServerRole | None = None) -> list[ServerEntry]:
        with self._sessions() as session:
            criteria = {"role": role} if role is not None else {}
            return [_entry(server) for server in ServerDao(session=session).find_all_by(**criteria)]

