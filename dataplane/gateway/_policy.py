"""The method policy: every WorkflowService and OperatorService method, classified.

Explicit on purpose. A method missing here (a newer ``temporalio`` added it) is refused at
run time and fails ``test_every_method_is_classified``, so nothing new is exposed until
someone decides what it needs.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

WORKFLOW_SERVICE = "temporal.api.workflowservice.v1.WorkflowService"
OPERATOR_SERVICE = "temporal.api.operatorservice.v1.OperatorService"


class Handling(enum.Enum):
    """What the gateway does with a method."""

    # The body names a namespace; the caller needs ``Permission`` on it; forwarded to its cell.
    NAMESPACE = "namespace"
    # No namespace; harmless cluster facts; forwarded to a cell of a namespace the caller may use.
    CLUSTER = "cluster"
    # No namespace; answered by the gateway from what the caller may see.
    GATEWAY = "gateway"
    # Never reaches a cell: namespace lifecycle belongs to the control plane, cluster
    # administration to the operator.
    DENIED = "denied"


class Permission(enum.IntEnum):
    """Namespace permission a caller needs (ordered: admin implies write implies read)."""

    READ = 1
    WRITE = 2
    ADMIN = 3


@dataclass(frozen=True, slots=True)
class MethodPolicy:
    handling: Handling
    permission: Permission | None = None
    reason: str = ""


def _namespace(permission: Permission) -> MethodPolicy:
    return MethodPolicy(Handling.NAMESPACE, permission)


_READ = _namespace(Permission.READ)
_WRITE = _namespace(Permission.WRITE)
_ADMIN = _namespace(Permission.ADMIN)
_LIFECYCLE = MethodPolicy(
    Handling.DENIED,
    reason="namespaces are managed through the Stratus control plane (API or `stratus` CLI), "
    "not through the Temporal API",
)
_CLUSTER_ADMIN = MethodPolicy(
    Handling.DENIED,
    reason="cluster administration (remote clusters, Nexus endpoints) is reserved to the "
    "Stratus operator",
)

_READ_METHODS = """
CountActivityExecutions CountNexusOperationExecutions CountSchedules CountWorkers
CountWorkflowExecutions DescribeActivityExecution DescribeBatchOperation DescribeDeployment
DescribeNamespace DescribeNexusOperationExecution DescribeSchedule DescribeTaskQueue
DescribeWorker DescribeWorkerDeployment DescribeWorkerDeploymentVersion
DescribeWorkflowExecution DescribeWorkflowRule FetchWorkerConfig GetCurrentDeployment
GetDeploymentReachability GetWorkerBuildIdCompatibility GetWorkerTaskReachability
GetWorkerVersioningRules GetWorkflowExecutionHistory GetWorkflowExecutionHistoryReverse
ListActivityExecutions ListArchivedWorkflowExecutions ListBatchOperations
ListClosedWorkflowExecutions ListDeployments ListNexusOperationExecutions
ListOpenWorkflowExecutions ListScheduleMatchingTimes ListSchedules ListTaskQueuePartitions
ListWorkerDeployments ListWorkers ListWorkflowExecutions ListWorkflowRules
PollActivityExecution PollNexusOperationExecution PollWorkflowExecutionUpdate QueryWorkflow
ScanWorkflowExecutions
"""
_WRITE_METHODS = """
CreateSchedule CreateWorkerDeployment CreateWorkerDeploymentVersion CreateWorkflowRule
DeleteActivityExecution DeleteNexusOperationExecution DeleteSchedule DeleteWorkerDeployment
DeleteWorkerDeploymentVersion DeleteWorkflowExecution DeleteWorkflowRule ExecuteMultiOperation
PatchSchedule PauseActivity PauseActivityExecution PauseWorkflowExecution
PollActivityTaskQueue PollNexusTaskQueue PollWorkflowExecutionTimeSkipping
PollWorkflowTaskQueue RecordActivityTaskHeartbeat RecordActivityTaskHeartbeatById
RecordWorkerHeartbeat RequestCancelActivityExecution RequestCancelNexusOperationExecution
RequestCancelWorkflowExecution ResetActivity ResetActivityExecution ResetStickyTaskQueue
ResetWorkflowExecution RespondActivityTaskCanceled RespondActivityTaskCanceledById
RespondActivityTaskCompleted RespondActivityTaskCompletedById RespondActivityTaskFailed
RespondActivityTaskFailedById RespondNexusTaskCompleted RespondNexusTaskFailed
RespondQueryTaskCompleted RespondWorkflowTaskCompleted RespondWorkflowTaskFailed
SetCurrentDeployment SetWorkerDeploymentCurrentVersion SetWorkerDeploymentManager
SetWorkerDeploymentRampingVersion ShutdownWorker SignalWithStartWorkflowExecution
SignalWorkflowExecution StartActivityExecution StartBatchOperation StartNexusOperationExecution
StartWorkflowExecution StopBatchOperation TerminateActivityExecution
TerminateNexusOperationExecution TerminateWorkflowExecution TriggerWorkflowRule UnpauseActivity
UnpauseActivityExecution UnpauseWorkflowExecution UpdateActivityExecutionOptions
UpdateActivityOptions UpdateSchedule UpdateTaskQueueConfig UpdateWorkerBuildIdCompatibility
UpdateWorkerConfig UpdateWorkerDeploymentVersionComputeConfig
UpdateWorkerDeploymentVersionMetadata UpdateWorkerVersioningRules UpdateWorkflowExecution
UpdateWorkflowExecutionOptions ValidateWorkerDeploymentVersionComputeConfig
"""


def _table() -> Mapping[str, MethodPolicy]:
    table: dict[str, MethodPolicy] = {}
    for name in _READ_METHODS.split():
        table[f"{WORKFLOW_SERVICE}/{name}"] = _READ
    for name in _WRITE_METHODS.split():
        table[f"{WORKFLOW_SERVICE}/{name}"] = _WRITE
    for name in ("GetSystemInfo", "GetSearchAttributes"):
        table[f"{WORKFLOW_SERVICE}/{name}"] = MethodPolicy(Handling.CLUSTER)
    for name in ("ListNamespaces", "GetClusterInfo"):
        table[f"{WORKFLOW_SERVICE}/{name}"] = MethodPolicy(Handling.GATEWAY)
    for name in ("RegisterNamespace", "UpdateNamespace", "DeprecateNamespace"):
        table[f"{WORKFLOW_SERVICE}/{name}"] = _LIFECYCLE
    table[f"{OPERATOR_SERVICE}/ListSearchAttributes"] = _READ
    table[f"{OPERATOR_SERVICE}/AddSearchAttributes"] = _ADMIN
    table[f"{OPERATOR_SERVICE}/RemoveSearchAttributes"] = _ADMIN
    table[f"{OPERATOR_SERVICE}/DeleteNamespace"] = _LIFECYCLE
    for name in (
        "AddOrUpdateRemoteCluster",
        "RemoveRemoteCluster",
        "ListClusters",
        "CreateNexusEndpoint",
        "UpdateNexusEndpoint",
        "DeleteNexusEndpoint",
        "GetNexusEndpoint",
        "ListNexusEndpoints",
    ):
        table[f"{OPERATOR_SERVICE}/{name}"] = _CLUSTER_ADMIN
    return MappingProxyType(table)


POLICY: Mapping[str, MethodPolicy] = _table()
UNCLASSIFIED = MethodPolicy(
    Handling.DENIED,
    reason="this method is not yet classified by the Stratus gateway and is refused",
)


def policy_of(service: str, method: str) -> MethodPolicy:
    return POLICY.get(f"{service}/{method}", UNCLASSIFIED)


def method_table_markdown() -> str:
    """The policy as a Markdown table (kept in docs/security.md; a test checks it is current)."""
    rows = ["| service | method | handling | permission |", "|---|---|---|---|"]
    for key in sorted(POLICY):
        service, method = key.rsplit("/", 1)
        policy = POLICY[key]
        permission = policy.permission.name.lower() if policy.permission else "—"
        rows.append(
            f"| {service.rsplit('.', 1)[-1]} | {method} | {policy.handling.value} | {permission} |"
        )
    return "\n".join(rows)
