"""The system of record's models, one per module; importing this package registers them all."""

from pbx_services.cluster.models.admin import Administrator, AdminRole, AuditEntry
from pbx_services.cluster.models.alert import AlertEmail, AlertEngineState, AlertRecord, EmailDelivery
from pbx_services.cluster.models.base import Base
from pbx_services.cluster.models.cdr import Cdr
from pbx_services.cluster.models.did import Did
from pbx_services.cluster.models.feature_code import FeatureCode
from pbx_services.cluster.models.forwarding import CallForwarding
from pbx_services.cluster.models.ivr import Holiday, IvrMenu, IvrOption, Prompt, Schedule
from pbx_services.cluster.models.meeting import MeetingRoom
from pbx_services.cluster.models.outbound_route import OutboundRoute, OutboundRouteTrunk, PermissionClass
from pbx_services.cluster.models.queue import AgentSkill, CallQueue, QueueMember
from pbx_services.cluster.models.ring_group import RingGroup
from pbx_services.cluster.models.server import Server, ServerRole
from pbx_services.cluster.models.tenant import Tenant
from pbx_services.cluster.models.trunk import NumberFormat, Trunk, TrunkTransport
from pbx_services.cluster.models.user import User
from pbx_services.cluster.models.user_import_job import ImportState, UserImportJob
from pbx_services.cluster.models.voicemail import Mailbox, MessageStatus, VoicemailMessage

__all__ = ["AdminRole", "Administrator", "AgentSkill", "AlertEmail", "AlertEngineState", "AlertRecord",
           "AuditEntry", "EmailDelivery",
           "Base", "CallForwarding", "CallQueue", "Cdr", "Did", "FeatureCode", "Holiday", "ImportState",
           "IvrMenu", "IvrOption", "Mailbox", "MeetingRoom", "MessageStatus", "NumberFormat", "OutboundRoute",
           "OutboundRouteTrunk", "PermissionClass", "Prompt", "QueueMember", "RingGroup", "Schedule",
           "Server", "ServerRole", "Tenant", "Trunk", "TrunkTransport", "User", "UserImportJob",
           "VoicemailMessage"]
