"""ORM models, one file per entity."""

from controlplane.models.account import Account
from controlplane.models.account_plan import AccountPlan
from controlplane.models.account_quota import AccountQuota
from controlplane.models.api_key import ApiKey
from controlplane.models.async_operation import AsyncOperation
from controlplane.models.audit_event import AuditEvent
from controlplane.models.audit_sink import AuditSink
from controlplane.models.base import Base
from controlplane.models.cell import Cell
from controlplane.models.cell_health import CellHealth
from controlplane.models.credit import Credit
from controlplane.models.credit_note import CreditNote
from controlplane.models.export_sink import ExportSink
from controlplane.models.gateway_instance import GatewayInstance
from controlplane.models.gateway_latency import GatewayLatencyBucket
from controlplane.models.gateway_route import GatewayRoute
from controlplane.models.group_claim import GroupClaimConfig, GroupClaimMapping
from controlplane.models.history_export_sink import HistoryExportSink
from controlplane.models.insight import InsightAnalysis, InsightFinding, ThrottledHour
from controlplane.models.invoice import (
    FinalizedInvoiceChanged,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
)
from controlplane.models.invoice_delivery import InvoiceDelivery
from controlplane.models.namespace import Namespace
from controlplane.models.namespace_access import NamespaceAccess
from controlplane.models.oidc_login_attempt import OidcLoginAttempt
from controlplane.models.saml_assertion_seen import SamlAssertionSeen
from controlplane.models.saml_idp_config import SamlIdpConfig
from controlplane.models.saml_request import SamlAuthnRequest
from controlplane.models.scim_token import ScimToken
from controlplane.models.service_account import ServiceAccount
from controlplane.models.usage_cursor import UsageCursor
from controlplane.models.usage_record import UsageRecord
from controlplane.models.usage_source import UsageSource
from controlplane.models.user import User
from controlplane.models.user_group import UserGroup, UserGroupMember
from controlplane.models.web_session import WebSession
from controlplane.states import NamespaceState, OperationState

__all__ = [
    "Account",
    "AccountPlan",
    "AccountQuota",
    "ApiKey",
    "AsyncOperation",
    "AuditEvent",
    "AuditSink",
    "Base",
    "Cell",
    "CellHealth",
    "Credit",
    "CreditNote",
    "ExportSink",
    "FinalizedInvoiceChanged",
    "GatewayInstance",
    "GatewayLatencyBucket",
    "GatewayRoute",
    "GroupClaimConfig",
    "GroupClaimMapping",
    "HistoryExportSink",
    "InsightAnalysis",
    "InsightFinding",
    "Invoice",
    "InvoiceDelivery",
    "InvoiceLine",
    "InvoiceStatus",
    "Namespace",
    "NamespaceAccess",
    "NamespaceState",
    "OidcLoginAttempt",
    "OperationState",
    "SamlAssertionSeen",
    "SamlAuthnRequest",
    "SamlIdpConfig",
    "ScimToken",
    "ServiceAccount",
    "ThrottledHour",
    "UsageCursor",
    "UsageRecord",
    "UsageSource",
    "User",
    "UserGroup",
    "UserGroupMember",
    "WebSession",
]
