{{/* What the ClusterRole lets the proxy impersonate beyond users, groups and uids. */}}

{{/* Extra keys the authz service may set, for the userextras impersonation rule. */}}
{{- define "kube-oidc-authz.extraKeys" -}}
{{- $v := .Values }}
{{- $keys := list }}
{{- if not (kindIs "invalid" $v.rbac.impersonate.extraKeys) }}
{{- $keys = $v.rbac.impersonate.extraKeys }}
{{- else }}
{{- if $v.authz.credentialIdExtra }}{{ $keys = append $keys "authentication.kubernetes.io/credential-id" }}{{ end }}
{{- if $v.extraImpersonationHeaders.clientIP }}{{ $keys = append $keys "remote-client-ip" }}{{ end }}
{{- range (splitList "," (toString $v.extraImpersonationHeaders.headers)) }}
{{- $kv := splitList "=" (trim .) }}
{{- if and (gt (len $kv) 1) (first $kv) }}{{ $keys = append $keys (lower (trim (first $kv))) }}{{ end }}
{{- end }}
{{- /* The keys of claimMappings.extra, whose valueExpression (CEL) the authz service evaluates. */}}
{{- if $v.authenticationConfig }}
{{- range $jwt := ($v.authenticationConfig.jwt | default list) }}
{{- range (dig "claimMappings" "extra" list $jwt) }}
{{- if .key }}{{ $keys = append $keys .key }}{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $keys | uniq | sortAlpha | toJson }}
{{- end }}
