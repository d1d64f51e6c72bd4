{{/* The audit forwarder: whether it runs, and which key of its Secret holds the refresh token. */}}

{{- define "kube-oidc-authz.auditSecretKey" -}}
{{- if .Values.auditProxy.existingSecret }}{{ .Values.auditProxy.existingSecretKey }}{{ else }}refreshToken{{ end }}
{{- end }}

{{/* "true" when the audit forwarder sidecar runs. */}}
{{- define "kube-oidc-authz.auditEnabled" -}}
{{- if .Values.auditProxy.serviceName }}true{{ end }}
{{- end }}
