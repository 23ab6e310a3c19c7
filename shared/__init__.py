"""The RMA Compute Pool protocol: every message between workers, admins and the coordinator.

Depends on pydantic only. Import the models from here.
"""

from shared.admin import (
    AdminHealth,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyView,
    PoolStats,
    TierCounts,
    WorkerList,
    WorkerView,
)
from shared.base import RequestModel, ResponseModel, WorkerId
from shared.capabilities import DockerInfo, GpuInfo, WorkerCapabilities
from shared.catalog import ServiceCatalog, ServiceSpec
from shared.messages import (
    TIER_NAMES,
    ContainerReport,
    ContainerState,
    ErrorResponse,
    HealthResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    Liveness,
    RegisterRequest,
    RegisterResponse,
    Schedulability,
    ServiceAssignment,
    Tier,
    UnregisterResponse,
)
from shared.version import (
    MIN_SUPPORTED_AGENT_VERSION,
    PROTOCOL_VERSION,
    AgentTooOldError,
    check_agent_version,
)

__all__ = [
    "MIN_SUPPORTED_AGENT_VERSION",
    "PROTOCOL_VERSION",
    "TIER_NAMES",
    "AdminHealth",
    "AgentTooOldError",
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyList",
    "ApiKeyView",
    "ContainerReport",
    "ContainerState",
    "DockerInfo",
    "ErrorResponse",
    "GpuInfo",
    "HealthResponse",
    "HeartbeatRequest",
    "HeartbeatResponse",
    "Liveness",
    "PoolStats",
    "RegisterRequest",
    "RegisterResponse",
    "RequestModel",
    "ResponseModel",
    "Schedulability",
    "ServiceAssignment",
    "ServiceCatalog",
    "ServiceSpec",
    "Tier",
    "TierCounts",
    "UnregisterResponse",
    "WorkerCapabilities",
    "WorkerId",
    "WorkerList",
    "WorkerView",
    "check_agent_version",
]
