{{/* How the authz service learns its issuers: flags from oidc.*, or a structured AuthenticationConfiguration. */}}

{{/* "true" when the authz service reads a structured AuthenticationConfiguration. */}}
{{- define "kube-oidc-authz.structuredAuthn" -}}
{{- if .Values.authenticationConfig }}true{{ end }}
{{- end }}
