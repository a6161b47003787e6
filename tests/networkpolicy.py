"""Test helper: Kubernetes NetworkPolicy semantics over labelled pods, to ask whether a connection would be let
through without a cluster.

The rules (networking.k8s.io/v1, as the API reference states them): a pod is isolated for ingress (egress) when a
policy of its namespace selects it with that type in `policyTypes` (absent: Ingress, plus Egress when the policy has
`egress` rules); an isolated pod admits only what the union of its selecting policies' rules allows, a pod no policy
isolates admits everything. A connection needs both ends to agree: the source's egress and the destination's
ingress. A rule with no peers matches every peer, one with no ports every port; a peer with a `podSelector` alone
means pods of the policy's own namespace, with a `namespaceSelector` pods of the matching namespaces, with both the
pods matching both; an `ipBlock` matches addresses outside the cluster's pods. Namespaces carry the
`kubernetes.io/metadata.name` label, as the API server sets it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: Mapping[str, str]
    ports: Mapping[str, int] = field(default_factory=dict)  # named container ports


@dataclass(frozen=True)
class Address:
    """An address outside every pod: the internet, a node, the API server."""

    ip: str


Endpoint = Pod | Address


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A label selector (`matchLabels`, `matchExpressions`) against labels; `{}` selects everything."""
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True


class Network:
    """NetworkPolicies applied over namespaces (name -> labels); `allows` answers for one connection."""

    def __init__(self, manifests: Iterable[Mapping[str, Any]], namespaces: Mapping[str, Mapping[str, str]]) -> None:
        self.policies = [m for m in manifests if m["kind"] == "NetworkPolicy"]
        self.namespaces = {name: {**labels, "kubernetes.io/metadata.name": name} for name, labels in namespaces.items()}

    def allows(self, source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP") -> bool:
        return self._permits(source, "Egress", destination, port, protocol) and self._permits(
            destination, "Ingress", source, port, protocol
        )

    def _permits(self, pod: Endpoint, direction: str, peer: Endpoint, port: int, protocol: str) -> bool:
        """Whether `pod`'s policies of `direction` let it talk with `peer` (to it for Egress, from it for Ingress)."""
        if isinstance(pod, Address):
            return True  # outside the cluster: no NetworkPolicy applies
        isolating = [p for p in self.policies if self._selects(p, pod) and direction in _types(p)]
        if not isolating:
            return True
        target = peer if direction == "Egress" else pod  # named ports are the destination's
        key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        return any(
            self._peer_matches(policy, rule.get(peers_key), peer)
            and _port_matches(rule.get("ports"), target, port, protocol)
            for policy in isolating
            for rule in policy["spec"].get(key) or []
        )

    def _selects(self, policy: Mapping[str, Any], pod: Pod) -> bool:
        return policy["metadata"]["namespace"] == pod.namespace and selects(policy["spec"]["podSelector"], pod.labels)

    def _peer_matches(self, policy: Mapping[str, Any], peers: list[dict] | None, peer: Endpoint) -> bool:
        if not peers:
            return True  # no peers named: every peer
        return any(self._one_peer(policy, entry, peer) for entry in peers)

    def _one_peer(self, policy: Mapping[str, Any], entry: Mapping[str, Any], peer: Endpoint) -> bool:
        if "ipBlock" in entry:
            if not isinstance(peer, Address):
                return False
            address, block = ipaddress.ip_address(peer.ip), entry["ipBlock"]
            return address in ipaddress.ip_network(block["cidr"]) and not any(
                address in ipaddress.ip_network(excluded) for excluded in block.get("except") or []
            )
        if isinstance(peer, Address):
            return False
        if "namespaceSelector" in entry:
            in_namespace = selects(entry["namespaceSelector"], self.namespaces.get(peer.namespace, {}))
        else:
            in_namespace = peer.namespace == policy["metadata"]["namespace"]
        return in_namespace and selects(entry.get("podSelector") or {}, peer.labels)


def _types(policy: Mapping[str, Any]) -> list[str]:
    spec = policy["spec"]
    return spec.get("policyTypes") or ["Ingress", *(["Egress"] if "egress" in spec else [])]


def _port_matches(ports: list[dict] | None, destination: Endpoint, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):  # a named port of the destination pod
            wanted = destination.ports.get(wanted) if isinstance(destination, Pod) else None
            if wanted is None:
                continue
        if wanted <= port <= entry.get("endPort", wanted):
            return True
    return False
