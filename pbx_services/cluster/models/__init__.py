"""The system of record's models, one per module; importing this package registers them all."""

from pbx_services.cluster.models.base import Base
from pbx_services.cluster.models.cdr import Cdr
from pbx_services.cluster.models.ivr import Holiday, IvrMenu, IvrOption, Prompt, Schedule
from pbx_services.cluster.models.meeting import MeetingRoom
from pbx_services.cluster.models.queue import AgentSkill, CallQueue, QueueMember
from pbx_services.cluster.models.server import Server, ServerRole
from pbx_services.cluster.models.tenant import Tenant
from pbx_services.cluster.models.user import User

__all__ = ["AgentSkill", "Base", "CallQueue", "Cdr", "Holiday", "IvrMenu", "IvrOption", "MeetingRoom",
           "Prompt", "QueueMember", "Schedule", "Server", "ServerRole", "Tenant", "User"]
