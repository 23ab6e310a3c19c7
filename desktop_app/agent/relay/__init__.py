"""The worker's end of the relay: end users' requests arrive over a tunnel the agent opened.

:class:`RelayTunnel` keeps the tunnel open (a WebSocket, or HTTP long-polling where those
are blocked) and answers each relayed request from the local container it names; the
protocol is :mod:`shared.tunnel`.
"""

from .forwarder import Forwarder, RelayStream
from .transport import (
    LongPollTransport,
    TransportMode,
    TunnelAuthRefused,
    TunnelClosed,
    TunnelConnectError,
    TunnelConnector,
    TunnelTransport,
    WebSocketTransport,
    WebSocketUnsupported,
)
from .tunnel import RelayTunnel, ready_services

__all__ = [
    "Forwarder",
    "LongPollTransport",
    "RelayStream",
    "RelayTunnel",
    "TransportMode",
    "TunnelAuthRefused",
    "TunnelClosed",
    "TunnelConnectError",
    "TunnelConnector",
    "TunnelTransport",
    "WebSocketTransport",
    "WebSocketUnsupported",
    "ready_services",
]
