{{/* End-user impersonation (`kubectl --as`): the extra keys the proxy then writes or forwards. */}}

{{/*
The extra keys naming the original user, which the authz service adds to
every impersonated identity (src/k8s/user_info.rs ORIGINAL_USER_EXTRAS;
a test holds this list to the binary's), then the keys users may ask for.
*/}}
{{- define "kube-oidc-authz.impersonationExtraKeys" -}}
{{- $keys := list
  "originaluser.kube-oidc-authz.io/user"
  "originaluser.kube-oidc-authz.io/uid"
  "originaluser.kube-oidc-authz.io/groups"
  "originaluser.kube-oidc-authz.io/extra"
}}
{{- range (.Values.impersonation.extraKeys | default list) }}{{ $keys = append $keys . }}{{ end }}
{{- $keys | uniq | toJson }}
{{- end }}
