{{/* How the authz service learns its issuers (oidc.* flags or an AuthenticationConfiguration), and what the chart checks of it. */}}

{{/* "true" when the authz service reads a structured AuthenticationConfiguration. */}}
{{- define "kube-oidc-authz.structuredAuthn" -}}
{{- if .Values.authenticationConfig }}true{{ end }}
{{- end }}

{{/*
Problems with authenticationConfig that the chart can see without compiling
CEL, as a JSON list, each naming the field as the authz service does (it
refuses the same at start-up, with exit 64, and also compiles every
expression): claim and expression set together, a prefix beside an
expression, and extra keys, which also become the userextras resourceNames of
the ClusterRole. Refusing them at render time keeps a pod from crash-looping
on a configuration that could never start.
*/}}
{{- define "kube-oidc-authz.authnErrors" -}}
{{- $errs := list }}
{{- $cfg := .Values.authenticationConfig }}
{{- if and (kindIs "map" $cfg) (kindIs "slice" $cfg.jwt) }}
{{- range $i, $jwt := $cfg.jwt }}
{{- if kindIs "map" $jwt }}
{{- $at := printf "authenticationConfig.jwt[%d]" $i }}
{{- if kindIs "slice" $jwt.claimValidationRules }}
{{- range $j, $rule := $jwt.claimValidationRules }}
{{- if and (kindIs "map" $rule) $rule.claim $rule.expression }}
{{- $errs = append $errs (printf "%s.claimValidationRules[%d].claim: claim and expression can't both be set" $at $j) }}
{{- end }}
{{- end }}
{{- end }}
{{- $mappings := $jwt.claimMappings }}
{{- if kindIs "map" $mappings }}
{{- range $name := list "username" "groups" "uid" }}
{{- $m := index $mappings $name }}
{{- if kindIs "map" $m }}
{{- if and $m.claim $m.expression }}
{{- $errs = append $errs (printf "%s.claimMappings.%s: Invalid value: claim and expression can't both be set" $at $name) }}
{{- else if and $m.expression (hasKey $m "prefix") }}
{{- $errs = append $errs (printf "%s.claimMappings.%s.prefix: Invalid value: may not be specified when expression is set" $at $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- if kindIs "slice" $mappings.extra }}
{{- $seen := dict }}
{{- range $j, $e := $mappings.extra }}
{{- $eat := printf "%s.claimMappings.extra[%d]" $at $j }}
{{- $key := toString (dig "key" "" ($e | default dict)) }}
{{- $domain := first (splitList "/" $key) }}
{{- if not $key }}
{{- $errs = append $errs (printf "%s.key: Required value" $eat) }}
{{- else if not (regexMatch "^[^/]+/.+$" $key) }}
{{- $errs = append $errs (printf "%s.key: Invalid value: %q: must be a domain-prefixed path (such as \"acme.io/foo\")" $eat $key) }}
{{- else if ne $key (lower $key) }}
{{- $errs = append $errs (printf "%s.key: Invalid value: %q: key must be lowercase" $eat $key) }}
{{- else if or (eq $domain "kubernetes.io" "k8s.io") (hasSuffix ".kubernetes.io" $domain) (hasSuffix ".k8s.io" $domain) }}
{{- $errs = append $errs (printf "%s.key: Invalid value: %q: k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use" $eat $key) }}
{{- else if hasKey $seen $key }}
{{- $errs = append $errs (printf "%s.key: Duplicate value: %q" $eat $key) }}
{{- end }}
{{- $_ := set $seen $key true }}
{{- if not (dig "valueExpression" "" ($e | default dict)) }}
{{- $errs = append $errs (printf "%s.valueExpression: Required value" $eat) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $errs | toJson }}
{{- end }}
