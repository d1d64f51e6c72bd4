{{/* The command-line arguments of the authz and audit-forwarder containers. */}}

{{/*
Arguments of the authz container, as a YAML list. Every flag here is one the
`kube-oidc-authz authz` command accepts; a chart test starts the binary with
exactly this list.
*/}}
{{- define "kube-oidc-authz.authzArgs" -}}
{{- $v := .Values }}
{{- $args := list "authz" }}
{{- $args = append $args (printf "--log-format=%s" $v.authz.logFormat) }}
{{- $args = append $args (printf "--log-level=%s" $v.authz.logLevel) }}
{{- if $v.authz.otlpEndpoint }}
{{- $args = append $args (printf "--otlp-endpoint=%s" $v.authz.otlpEndpoint) }}
{{- end }}
{{- /*
Beside Envoy the gRPC port stays on loopback: only Envoy in the same pod may
ask. Without Envoy it must listen on the pod's address, which the binary
allows with mutual TLS (authzService.mtls.secretName: only your gateway's
client certificate is answered) or with the explicit opt-in, where the
NetworkPolicy "validate" requires is what keeps other clients out, since
allowed Checks carry the proxy's impersonating token.
*/}}
{{- $grpcHost := ternary "127.0.0.1" "0.0.0.0" (and $v.envoy.enabled true) }}
{{- $args = append $args (printf "--grpc-address=%s:%d" $grpcHost (int $v.authz.grpcPort)) }}
{{- if and (not $v.envoy.enabled) $v.authzService.mtls.secretName }}
{{- $mtls := include "kube-oidc-authz.paths.mtlsDir" . }}
{{- $args = append $args (printf "--grpc-tls-cert-file=%s/tls.crt" $mtls) }}
{{- $args = append $args (printf "--grpc-tls-key-file=%s/tls.key" $mtls) }}
{{- $args = append $args (printf "--grpc-tls-client-ca-file=%s/ca.crt" $mtls) }}
{{- else if not $v.envoy.enabled }}
{{- $args = append $args "--grpc-allow-remote=true" }}
{{- end }}
{{- $args = append $args (printf "--http-address=0.0.0.0:%d" (int $v.authz.httpPort)) }}
{{- if $v.authenticationConfig }}
{{- $args = append $args (printf "--authentication-config=%s/authentication-config.yaml" (include "kube-oidc-authz.paths.authnDir" .)) }}
{{- else }}
{{- $args = append $args (printf "--oidc-issuer-url=%s" $v.oidc.issuerUrl) }}
{{- $args = append $args (printf "--oidc-client-id=%s" (toString $v.oidc.clientId)) }}
{{- if $v.oidc.caPEM }}
{{- $args = append $args (printf "--oidc-ca-file=%s/oidc-ca.crt" (include "kube-oidc-authz.paths.authnDir" .)) }}
{{- end }}
{{- if $v.oidc.usernameClaim }}
{{- $args = append $args (printf "--oidc-username-claim=%s" $v.oidc.usernameClaim) }}
{{- end }}
{{- /* Empty means unset, as with the apiserver's flag: its default prefix applies. */}}
{{- if $v.oidc.usernamePrefix }}
{{- $args = append $args (printf "--oidc-username-prefix=%s" (toString $v.oidc.usernamePrefix)) }}
{{- end }}
{{- if $v.oidc.groupsClaim }}
{{- $args = append $args (printf "--oidc-groups-claim=%s" $v.oidc.groupsClaim) }}
{{- end }}
{{- if $v.oidc.groupsPrefix }}
{{- $args = append $args (printf "--oidc-groups-prefix=%s" $v.oidc.groupsPrefix) }}
{{- end }}
{{- if $v.oidc.signingAlgs }}
{{- $args = append $args (printf "--oidc-signing-algs=%s" (join "," $v.oidc.signingAlgs)) }}
{{- end }}
{{- range $k := keys ($v.oidc.requiredClaims | default dict) | sortAlpha }}
{{- $args = append $args (printf "--oidc-required-claim=%s=%s" $k (toString (get $v.oidc.requiredClaims $k))) }}
{{- end }}
{{- end }}
{{- $args = append $args (printf "--credential-id-extra=%t" $v.authz.credentialIdExtra) }}
{{- $args = append $args (printf "--refuse-system-identities=%t" $v.authz.refuseSystemIdentities) }}
{{- $args = append $args (printf "--token-passthrough=%t" $v.tokenPassthrough.enabled) }}
{{- if and $v.tokenPassthrough.enabled $v.tokenPassthrough.audiences }}
{{- $args = append $args (printf "--token-passthrough-audiences=%s" (join "," $v.tokenPassthrough.audiences)) }}
{{- end }}
{{- $args = append $args (printf "--allow-impersonation=%t" $v.impersonation.enabled) }}
{{- if $v.impersonation.enabled }}
{{- $i := $v.impersonation }}
{{- $args = append $args (printf "--impersonation-max-values=%d" (int64 $i.maxValues)) }}
{{- $args = append $args (printf "--impersonation-review-timeout=%s" $i.reviewTimeout) }}
{{- $args = append $args (printf "--impersonation-cache-allow-ttl=%s" $i.cacheAllowTtl) }}
{{- $args = append $args (printf "--impersonation-cache-deny-ttl=%s" $i.cacheDenyTtl) }}
{{- $args = append $args (printf "--impersonation-cache-max-entries=%d" (int64 $i.cacheMaxEntries)) }}
{{- end }}
{{- $args = append $args (printf "--extra-user-header-client-ip=%t" $v.extraImpersonationHeaders.clientIP) }}
{{- if $v.extraImpersonationHeaders.headers }}
{{- $args = append $args (printf "--extra-user-headers=%s" (toString $v.extraImpersonationHeaders.headers)) }}
{{- end }}
{{- if $v.authz.trustedProxyCidrs }}
{{- $args = append $args (printf "--trusted-proxy-cidrs=%s" (join "," $v.authz.trustedProxyCidrs)) }}
{{- end }}
{{- $args = append $args (printf "--upstream-token-file=%s/token" (include "kube-oidc-authz.paths.saDir" .)) }}
{{- $args = append $args (printf "--apiserver-ca-file=%s/ca.crt" (include "kube-oidc-authz.paths.saDir" .)) }}
{{- $args = append $args (printf "--cache-max-entries=%d" (int64 $v.authz.cacheMaxEntries)) }}
{{- $args = append $args (printf "--jwks-refresh-interval=%s" $v.authz.jwksRefreshInterval) }}
{{- $args = append $args (printf "--jwks-min-refresh-interval=%s" $v.authz.jwksMinRefreshInterval) }}
{{- $args = append $args (printf "--jwks-unknown-kid-max-wait=%s" $v.authz.jwksUnknownKidMaxWait) }}
{{- toYaml $args }}
{{- end }}

{{/*
Arguments of the audit forwarder container. Flags of older kube-oidc-proxy
values files (extraArgs audit-webhook-*) override the auditProxy values.
*/}}
{{- define "kube-oidc-authz.auditArgs" -}}
{{- $v := .Values }}
{{- $a := $v.auditProxy }}
{{- $flags := dict
  "audit-batch-max-size" (toString $a.batch.maxSize)
  "audit-batch-max-wait" (toString $a.batch.maxWait)
  "audit-batch-buffer-size" (toString $a.batch.bufferSize)
  "audit-batch-throttle-qps" (toString $a.batch.throttleQps)
  "audit-batch-throttle-burst" (toString $a.batch.throttleBurst)
  "audit-initial-backoff" (toString $a.initialBackoff)
  "audit-truncate-enabled" (toString $a.truncateEnabled)
}}
{{- $map := include "kube-oidc-authz.extraArgsMap" . | fromYaml }}
{{- range $k, $val := $v.extraArgs }}
{{- $to := get $map $k }}
{{- if $to }}{{ $_ := set $flags $to (toString $val) }}{{ end }}
{{- end }}
{{- $alsHost := ternary "127.0.0.1" "0.0.0.0" (and $v.envoy.enabled true) }}
{{- $args := list "audit-forwarder" }}
{{- $args = append $args (printf "--log-format=%s" $v.authz.logFormat) }}
{{- $args = append $args (printf "--log-level=%s" $a.logLevel) }}
{{- $args = append $args (printf "--webhook-address=127.0.0.1:%d" (int $a.webhookPort)) }}
{{- $args = append $args (printf "--http-address=0.0.0.0:%d" (int $a.httpPort)) }}
{{- $args = append $args (printf "--als-address=%s:%d" $alsHost (int $a.alsPort)) }}
{{- /* Your own Envoy sends its access log across the network; see --grpc-allow-remote above. */}}
{{- if and (not $v.envoy.enabled) $v.authzService.mtls.secretName }}
{{- $mtls := include "kube-oidc-authz.paths.mtlsDir" . }}
{{- $args = append $args (printf "--als-tls-cert-file=%s/tls.crt" $mtls) }}
{{- $args = append $args (printf "--als-tls-key-file=%s/tls.key" $mtls) }}
{{- $args = append $args (printf "--als-tls-client-ca-file=%s/ca.crt" $mtls) }}
{{- else if not $v.envoy.enabled }}
{{- $args = append $args "--als-allow-remote=true" }}
{{- end }}
{{- $args = append $args (printf "--restapi-url=%s" $a.restapiUrl) }}
{{- $args = append $args (printf "--service-name=%s" $a.serviceName) }}
{{- $args = append $args (printf "--refresh-token-file=%s/refresh-token" (include "kube-oidc-authz.paths.auditDir" .)) }}
{{- range $k := keys $flags | sortAlpha }}
{{- $args = append $args (printf "--%s=%s" $k (get $flags $k)) }}
{{- end }}
{{- if $a.spoolDir }}
{{- $args = append $args (printf "--audit-spool-dir=%s" $a.spoolDir) }}
{{- end }}
{{- toYaml $args }}
{{- end }}
