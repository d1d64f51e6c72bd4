{{/* The shipped Envoy files with their ${NAME} placeholders filled for this pod. */}}

{{/*
The value of every Envoy placeholder in this pod, as a JSON object. The names
and their pod values come from files/placeholders.yaml (a link to
envoy/placeholders.yaml, the one table of placeholders); what the chart's
values configure is laid over them. Setting a name the table lacks fails, as
does a template using one (see "envoyFile").
*/}}
{{- define "kube-oidc-authz.envoyPlaceholders" -}}
{{- $v := .Values }}
{{- $table := .Files.Get "files/placeholders.yaml" | fromYaml }}
{{- if or (not $table) (hasKey $table "Error") }}
{{- fail "files/placeholders.yaml is missing from the chart or is not a map of placeholders" }}
{{- end }}
{{- $subst := dict }}
{{- range $name, $row := $table }}
{{- if not (and (kindIs "map" $row) (hasKey $row "pod")) }}
{{- fail (printf "files/placeholders.yaml: %s has no pod value" $name) }}
{{- end }}
{{- $_ := set $subst $name (toString $row.pod) }}
{{- end }}
{{- $fromValues := dict
  "ENVOY_LISTEN_PORT" (toString (int $v.envoy.listenPort))
  "ENVOY_ADMIN_PORT" (toString (int $v.envoy.adminPort))
  "AUTHZ_PORT" (toString (int $v.authz.grpcPort))
  "APISERVER_ADDRESS" (toString $v.envoy.apiserver.address)
  "APISERVER_PORT" (toString (int $v.envoy.apiserver.port))
  "AUDIT_ALS_PORT" (toString (int $v.auditProxy.alsPort))
  "STREAM_IDLE_TIMEOUT" (toString $v.envoy.streamIdleTimeout)
}}
{{- /* Envoy has no service-account volume in this pod (only the authz
container gets a token), so the cluster CA is the kube-root-ca.crt
ConfigMap (envoy.apiserver.caConfigMap) mounted at apiserverCaDir. */}}
{{- $_ := set $fromValues "APISERVER_CA_FILE" (printf "%s/ca.crt" (include "kube-oidc-authz.paths.apiserverCaDir" .)) }}
{{- range $name, $val := $fromValues }}
{{- if not (hasKey $subst $name) }}
{{- fail (printf "the chart sets the Envoy placeholder %s, which files/placeholders.yaml does not list" $name) }}
{{- end }}
{{- $_ := set $subst $name $val }}
{{- end }}
{{- toJson $subst }}
{{- end }}

{{/* A shipped Envoy file (files/envoy.yaml, files/sds-tls.yaml) with its
placeholders filled for this pod. Call with (dict "root" $ "file" "envoy.yaml"). */}}
{{- define "kube-oidc-authz.envoyFile" -}}
{{- $root := .root }}
{{- $path := printf "files/%s" .file }}
{{- $cfg := $root.Files.Get $path }}
{{- if not $cfg }}
{{- fail (printf "%s is missing from the chart" $path) }}
{{- end }}
{{- $subst := include "kube-oidc-authz.envoyPlaceholders" $root | fromJson }}
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
{{- fail (printf "%s uses placeholders the chart does not know: %s (envoy/placeholders.yaml lists every placeholder)" $path (join ", " (uniq $left))) }}
{{- end }}
{{- join "\n" $out }}
{{- end }}

{{- define "kube-oidc-authz.envoyConfig" -}}
{{- include "kube-oidc-authz.envoyFile" (dict "root" . "file" "envoy.yaml") }}
{{- end }}
