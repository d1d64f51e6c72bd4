{{/* Validation of the values as a whole, and the extraArgs of older kube-oidc-proxy values files it accepts. */}}

{{/*
The legacy kube-oidc-proxy flags that older values files pass in extraArgs,
mapped to the audit forwarder's flags. Keys mapped to "" are satisfied by the
chart itself and dropped. Any other key fails the render (see "validate").
*/}}
{{- define "kube-oidc-authz.extraArgsMap" -}}
audit-webhook-batch-max-size: audit-batch-max-size
audit-webhook-batch-max-wait: audit-batch-max-wait
audit-webhook-batch-buffer-size: audit-batch-buffer-size
audit-webhook-batch-throttle-qps: audit-batch-throttle-qps
audit-webhook-batch-throttle-burst: audit-batch-throttle-burst
audit-webhook-initial-backoff: audit-initial-backoff
audit-webhook-truncate-enabled: audit-truncate-enabled
audit-webhook-config-file: ""
audit-policy-file: ""
{{- end }}

{{/* Replacements named in the failure message of an unknown extraArgs key. */}}
{{- define "kube-oidc-authz.extraArgsReplacements" -}}
oidc-issuer-url: oidc.issuerUrl
oidc-client-id: oidc.clientId
oidc-ca-file: oidc.caPEM
oidc-username-claim: oidc.usernameClaim
oidc-username-prefix: oidc.usernamePrefix
oidc-groups-claim: oidc.groupsClaim
oidc-groups-prefix: oidc.groupsPrefix
oidc-required-claim: oidc.requiredClaims
oidc-signing-algs: oidc.signingAlgs
token-passthrough: tokenPassthrough.enabled
token-passthrough-audiences: tokenPassthrough.audiences
extra-user-header-client-ip: extraImpersonationHeaders.clientIP
extra-user-headers: extraImpersonationHeaders.headers
tls-cert-file: tls.secretName
tls-private-key-file: tls.secretName
secure-port: service.port
v: authz.logLevel
{{- end }}

{{/*
Fails the render on contradictory or incomplete values, listing every
problem at once.
*/}}
{{- define "kube-oidc-authz.validate" -}}
{{- $errs := list }}
{{- $v := .Values }}
{{- if and $v.oidc.issuerUrl $v.authenticationConfig }}
{{- $errs = append $errs "set either oidc.issuerUrl or authenticationConfig, not both" }}
{{- end }}
{{- if not (or $v.oidc.issuerUrl $v.authenticationConfig) }}
{{- $errs = append $errs "oidc.issuerUrl (with oidc.clientId) or authenticationConfig is required" }}
{{- end }}
{{- if and $v.oidc.issuerUrl (not (hasPrefix "https://" $v.oidc.issuerUrl)) }}
{{- $errs = append $errs (printf "oidc.issuerUrl must start with https:// (got %q)" $v.oidc.issuerUrl) }}
{{- end }}
{{- if and $v.oidc.issuerUrl (not $v.oidc.clientId) }}
{{- $errs = append $errs "oidc.clientId is required with oidc.issuerUrl" }}
{{- end }}
{{- if $v.authenticationConfig }}
{{- if not (hasKey $v.authenticationConfig "jwt") }}
{{- $errs = append $errs "authenticationConfig must have a jwt list (an AuthenticationConfiguration of apiserver.config.k8s.io)" }}
{{- end }}
{{- if and (hasKey $v.authenticationConfig "kind") (ne (toString $v.authenticationConfig.kind) "AuthenticationConfiguration") }}
{{- $errs = append $errs (printf "authenticationConfig.kind must be AuthenticationConfiguration (got %q)" (toString $v.authenticationConfig.kind)) }}
{{- end }}
{{- $errs = concat $errs (include "kube-oidc-authz.authnErrors" . | fromJsonArray) }}
{{- end }}
{{- range $k, $val := $v.oidc.requiredClaims }}
{{- if or (contains "," $k) (contains "," (toString $val)) (contains "=" $k) }}
{{- $errs = append $errs (printf "oidc.requiredClaims: %q cannot hold ',' (nor '=' in the claim name)" $k) }}
{{- end }}
{{- end }}
{{- if and $v.tokenPassthrough.enabled (not $v.tokenPassthrough.audiences) }}
{{- $errs = append $errs "tokenPassthrough.audiences must list at least one audience when tokenPassthrough.enabled is true" }}
{{- end }}
{{- if $v.auditProxy.serviceName }}
{{- if and (not $v.auditProxy.refreshToken) (not $v.auditProxy.existingSecret) }}
{{- $errs = append $errs "auditProxy.serviceName is set: give auditProxy.existingSecret (recommended) or auditProxy.refreshToken" }}
{{- end }}
{{- if and $v.auditProxy.refreshToken $v.auditProxy.existingSecret }}
{{- $errs = append $errs "set either auditProxy.refreshToken or auditProxy.existingSecret, not both" }}
{{- end }}
{{- if not $v.auditProxy.restapiUrl }}
{{- $errs = append $errs "auditProxy.restapiUrl is required when auditProxy.serviceName is set" }}
{{- end }}
{{- end }}
{{- if $v.ingress.enabled }}
{{- $errs = append $errs "ingress.enabled is not supported: kubectl needs TLS through to Envoy (exec, watches); expose Envoy with service.type LoadBalancer, NodePort or ClusterIP instead" }}
{{- end }}
{{- $map := include "kube-oidc-authz.extraArgsMap" . | fromYaml }}
{{- $repl := include "kube-oidc-authz.extraArgsReplacements" . | fromYaml }}
{{- range $k, $_ := $v.extraArgs }}
{{- if not (hasKey $map $k) }}
{{- if hasKey $repl $k }}
{{- $errs = append $errs (printf "extraArgs.%s is not a flag of kube-oidc-authz: use the value %s" $k (get $repl $k)) }}
{{- else }}
{{- $errs = append $errs (printf "extraArgs.%s is not supported: the authz service and audit forwarder are configured by the chart's values (see README, Upgrading from kube-oidc-proxy)" $k) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $v.envoy.enabled $v.tls.certManager.enabled (not $v.tls.certManager.issuerRef.name) }}
{{- $errs = append $errs "tls.certManager.issuerRef.name is required when tls.certManager.enabled is true" }}
{{- end }}
{{- if and (ne $v.service.type "LoadBalancer") (or $v.service.loadBalancerIP $v.service.loadBalancerSourceRanges $v.service.loadBalancerClass) }}
{{- $errs = append $errs (printf "service.loadBalancerIP, loadBalancerSourceRanges and loadBalancerClass need service.type LoadBalancer (got %s)" $v.service.type) }}
{{- end }}
{{- if and (eq $v.service.type "ClusterIP") (not (kindIs "invalid" $v.service.nodePort)) }}
{{- $errs = append $errs "service.nodePort needs service.type NodePort or LoadBalancer" }}
{{- end }}
{{- if and $v.podDisruptionBudget.enabled (not (kindIs "invalid" $v.podDisruptionBudget.maxUnavailable)) (not (kindIs "invalid" $v.podDisruptionBudget.minAvailable)) }}
{{- $errs = append $errs "set podDisruptionBudget.minAvailable or podDisruptionBudget.maxUnavailable, not both (set the other to null)" }}
{{- end }}
{{- if and $v.autoscaling.enabled (lt (int $v.autoscaling.maxReplicas) (int $v.autoscaling.minReplicas)) }}
{{- $errs = append $errs "autoscaling.maxReplicas must be at least autoscaling.minReplicas" }}
{{- end }}
{{- if and (not $v.envoy.enabled) (not $v.authzService.mtls.secretName) (not $v.authzService.allowAnyClient) (not (and $v.networkPolicy.enabled $v.networkPolicy.ingressFrom)) }}
{{- $errs = append $errs "envoy.enabled=false exposes the Check service, whose answers carry the proxy's impersonating token: require your gateway's client certificate with authzService.mtls.secretName, or allow only your gateway with networkPolicy.enabled=true and networkPolicy.ingressFrom, or set authzService.allowAnyClient=true to accept the risk" }}
{{- end }}
{{- if and $v.envoy.enabled $v.authzService.mtls.secretName }}
{{- $errs = append $errs "authzService.mtls.secretName applies to authz-only mode (envoy.enabled=false); beside Envoy the Check port listens on loopback" }}
{{- end }}
{{- if $v.autoscaling.enabled }}
{{- $containers := list (dict "name" "authz" "r" $v.authz.resources) }}
{{- if $v.envoy.enabled }}{{ $containers = append $containers (dict "name" "envoy" "r" $v.envoy.resources) }}{{ end }}
{{- if $v.auditProxy.serviceName }}{{ $containers = append $containers (dict "name" "auditProxy" "r" $v.auditProxy.resources) }}{{ end }}
{{- range $containers }}
{{- if not (dig "requests" "cpu" "" (default $v.resources .r | default dict)) }}
{{- $errs = append $errs (printf "autoscaling.enabled needs CPU requests: set resources.requests.cpu (or %s.resources.requests.cpu)" .name) }}
{{- end }}
{{- end }}
{{- end }}
{{- $ports := list (int $v.authz.grpcPort) (int $v.authz.httpPort) }}
{{- if $v.envoy.enabled }}{{ $ports = concat $ports (list (int $v.envoy.listenPort) (int $v.envoy.adminPort)) }}{{ end }}
{{- if $v.auditProxy.serviceName }}{{ $ports = concat $ports (list (int $v.auditProxy.webhookPort) (int $v.auditProxy.httpPort) (int $v.auditProxy.alsPort)) }}{{ end }}
{{- if ne (len $ports) (len (uniq $ports)) }}
{{- $errs = append $errs (printf "container ports must differ: authz.grpcPort, authz.httpPort, envoy.listenPort, envoy.adminPort and the auditProxy ports share the pod's network (got %v)" $ports) }}
{{- end }}
{{- if $errs }}
{{- fail (printf "\n\ninvalid values:\n  - %s\n" (join "\n  - " $errs)) }}
{{- end }}
{{- end }}
