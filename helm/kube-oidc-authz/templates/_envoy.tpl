{{/* The shipped Envoy files with their ${NAME} placeholders filled for this pod. */}}

{{/* A shipped Envoy file (files/envoy.yaml, files/sds-tls.yaml) with its
placeholders filled for this pod. Call with (dict "root" $ "file" "envoy.yaml"). */}}
{{- define "kube-oidc-authz.envoyFile" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $path := printf "files/%s" .file }}
{{- $cfg := $root.Files.Get $path }}
{{- if not $cfg }}
{{- fail (printf "%s is missing from the chart" $path) }}
{{- end }}
{{- $tlsDir := include "kube-oidc-authz.paths.tlsDir" $root }}
{{- $envoyDir := include "kube-oidc-authz.paths.envoyDir" $root }}
{{- $subst := dict
  "ENVOY_LISTEN_ADDRESS" "0.0.0.0"
  "ENVOY_LISTEN_PORT" (toString (int $v.envoy.listenPort))
  "ENVOY_ADMIN_PORT" (toString (int $v.envoy.adminPort))
  "TLS_CERT_FILE" (printf "%s/tls.crt" $tlsDir)
  "TLS_KEY_FILE" (printf "%s/tls.key" $tlsDir)
  "TLS_WATCH_DIR" $tlsDir
  "SDS_TLS_FILE" (printf "%s/sds-tls.yaml" $envoyDir)
  "AUTHZ_ADDRESS" "127.0.0.1"
  "AUTHZ_PORT" (toString (int $v.authz.grpcPort))
  "APISERVER_ADDRESS" $v.envoy.apiserver.address
  "APISERVER_PORT" (toString (int $v.envoy.apiserver.port))
  "APISERVER_CA_FILE" (printf "%s/ca.crt" (include "kube-oidc-authz.paths.apiserverCaDir" $root))
  "AUDIT_ALS_ADDRESS" "127.0.0.1"
  "AUDIT_ALS_PORT" (toString (int $v.auditProxy.alsPort))
  "STREAM_IDLE_TIMEOUT" (toString $v.envoy.streamIdleTimeout)
  "LUA_FILE" (printf "%s/impersonation.lua" $envoyDir)
}}
{{- /* Comment lines keep their placeholders: they document the template. */}}
{{- $out := list }}
{{- $left := list }}
{{- range $line := splitList "\n" $cfg }}
{{- if not (hasPrefix "#" (trim $line)) }}
{{- range $name := keys $subst | sortAlpha }}
{{- $line = replace (printf "${%s}" $name) (get $subst $name) $line }}
{{- end }}
{{- $left = concat $left (regexFindAll "\\$\\{[A-Za-z0-9_]+\\}" $line -1) }}
{{- end }}
{{- $out = append $out $line }}
{{- end }}
{{- if $left }}
{{- fail (printf "%s uses placeholders the chart does not know: %s" $path (join ", " (uniq $left))) }}
{{- end }}
{{- join "\n" $out }}
{{- end }}

{{- define "kube-oidc-authz.envoyConfig" -}}
{{- include "kube-oidc-authz.envoyFile" (dict "root" . "file" "envoy.yaml") }}
{{- end }}
