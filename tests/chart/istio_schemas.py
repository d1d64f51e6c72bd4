"""Structural schemas of the Istio kinds under envoy/istio/, written from
Istio's API reference (security.istio.io/v1, networking.istio.io/v1 and
v1alpha3). They cover the fields those manifests may use and reject any other
key, so a misspelt field fails here rather than being dropped by the apiserver.
Istio's own CRDs are stricter in places (CEL rules); these are a floor."""

from __future__ import annotations


def _obj(props: dict, required: list[str] | None = None) -> dict:
    o = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        o["required"] = required
    return o


STR = {"type": "string"}
STRS = {"type": "array", "items": STR}
LABELS = {"type": "object", "additionalProperties": STR}
DURATION = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(ms|s|m|h)$"}
PORT_NUMBER = {"type": "integer", "minimum": 1, "maximum": 65535}
METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {"name": STR, "namespace": STR, "labels": LABELS, "annotations": LABELS},
}


def _kind(api_version: str, kind: str, spec: dict) -> dict:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": METADATA,
            "spec": spec,
        },
    }


_OPERATION = _obj(
    {
        "hosts": STRS, "notHosts": STRS, "ports": STRS, "notPorts": STRS,
        "methods": STRS, "notMethods": STRS, "paths": STRS, "notPaths": STRS,
    }
)

AUTHORIZATION_POLICY = _kind(
    "security.istio.io/v1",
    "AuthorizationPolicy",
    _obj(
        {
            "selector": _obj({"matchLabels": LABELS}),
            "targetRefs": {"type": "array"},
            "action": {"enum": ["ALLOW", "DENY", "AUDIT", "CUSTOM"]},
            "provider": _obj({"name": STR}, ["name"]),
            "rules": {
                "type": "array",
                "items": _obj(
                    {
                        "from": {"type": "array"},
                        "to": {"type": "array", "items": _obj({"operation": _OPERATION})},
                        "when": {"type": "array"},
                    }
                ),
            },
        }
    ),
)

_SERVER_TLS = _obj(
    {
        "mode": {"enum": ["PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"]},
        "credentialName": STR,
        "minProtocolVersion": STR,
        "httpsRedirect": {"type": "boolean"},
    }
)

GATEWAY = _kind(
    "networking.istio.io/v1",
    "Gateway",
    _obj(
        {
            "selector": LABELS,
            "servers": {
                "type": "array",
                "items": _obj(
                    {
                        "port": _obj(
                            {"number": PORT_NUMBER, "name": STR, "protocol": {"enum": ["HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS"]}, "targetPort": PORT_NUMBER},
                            ["number", "name", "protocol"],
                        ),
                        "hosts": STRS,
                        "tls": _SERVER_TLS,
                        "name": STR,
                    },
                    ["port", "hosts"],
                ),
            },
        },
        ["servers"],
    ),
)

_DESTINATION = _obj({"host": STR, "subset": STR, "port": _obj({"number": PORT_NUMBER})}, ["host"])

VIRTUAL_SERVICE = _kind(
    "networking.istio.io/v1",
    "VirtualService",
    _obj(
        {
            "hosts": STRS,
            "gateways": STRS,
            "exportTo": STRS,
            "http": {
                "type": "array",
                "items": _obj(
                    {
                        "name": STR,
                        "match": {"type": "array"},
                        "route": {"type": "array", "items": _obj({"destination": _DESTINATION, "weight": {"type": "integer"}}, ["destination"])},
                        "timeout": DURATION,
                        "retries": {"type": "object"},
                    }
                ),
            },
        },
        ["hosts"],
    ),
)

DESTINATION_RULE = _kind(
    "networking.istio.io/v1",
    "DestinationRule",
    _obj(
        {
            "host": STR,
            "exportTo": STRS,
            "trafficPolicy": _obj(
                {
                    "connectionPool": _obj(
                        {
                            "tcp": {"type": "object"},
                            "http": _obj(
                                {
                                    "useClientProtocol": {"type": "boolean"},
                                    "h2UpgradePolicy": {"enum": ["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"]},
                                    "idleTimeout": DURATION,
                                    "maxRequestsPerConnection": {"type": "integer"},
                                }
                            ),
                        }
                    ),
                    "tls": _obj(
                        {
                            "mode": {"enum": ["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]},
                            "credentialName": STR,
                            "caCertificates": STR,
                            "sni": STR,
                            "subjectAltNames": STRS,
                            "insecureSkipVerify": {"type": "boolean"},
                        }
                    ),
                }
            ),
        },
        ["host"],
    ),
)

_LISTENER_MATCH = _obj(
    {
        "portNumber": {"type": "integer"},
        "name": STR,
        "filterChain": _obj(
            {
                "name": STR,
                "sni": STR,
                "filter": _obj({"name": STR, "subFilter": _obj({"name": STR})}),
            }
        ),
    }
)

ENVOY_FILTER = _kind(
    "networking.istio.io/v1alpha3",
    "EnvoyFilter",
    _obj(
        {
            "workloadSelector": _obj({"labels": LABELS}),
            "priority": {"type": "integer"},
            "configPatches": {
                "type": "array",
                "minItems": 1,
                "items": _obj(
                    {
                        "applyTo": {"enum": ["LISTENER", "FILTER_CHAIN", "NETWORK_FILTER", "HTTP_FILTER", "ROUTE_CONFIGURATION", "VIRTUAL_HOST", "HTTP_ROUTE", "CLUSTER", "EXTENSION_CONFIG", "BOOTSTRAP", "LISTENER_FILTER"]},
                        "match": _obj(
                            {
                                "context": {"enum": ["ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY"]},
                                "listener": _LISTENER_MATCH,
                                "proxy": _obj({"proxyVersion": STR, "metadata": LABELS}),
                            }
                        ),
                        "patch": _obj(
                            {
                                "operation": {"enum": ["MERGE", "ADD", "REMOVE", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST", "REPLACE"]},
                                "value": {"type": "object"},
                                "filterClass": {"enum": ["UNSPECIFIED", "AUTHN", "AUTHZ", "STATS"]},
                            },
                            ["operation"],
                        ),
                    },
                    ["applyTo", "patch"],
                ),
            },
        },
        ["configPatches"],
    ),
)

MESH_CONFIG = _obj(
    {
        "meshConfig": _obj(
            {
                "extensionProviders": {
                    "type": "array",
                    "items": _obj(
                        {
                            "name": STR,
                            "envoyExtAuthzGrpc": _obj(
                                {
                                    "service": STR,
                                    "port": PORT_NUMBER,
                                    "timeout": DURATION,
                                    "failOpen": {"type": "boolean"},
                                    "statusOnError": STR,
                                    "clearRouteCache": {"type": "boolean"},
                                    "includeRequestBodyInCheck": {"type": "object"},
                                },
                                ["service", "port"],
                            ),
                        },
                        ["name", "envoyExtAuthzGrpc"],
                    ),
                }
            },
            ["extensionProviders"],
        )
    },
    ["meshConfig"],
)

BY_KIND = {
    "AuthorizationPolicy": AUTHORIZATION_POLICY,
    "Gateway": GATEWAY,
    "VirtualService": VIRTUAL_SERVICE,
    "DestinationRule": DESTINATION_RULE,
    "EnvoyFilter": ENVOY_FILTER,
}
