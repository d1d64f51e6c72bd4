-- kube-oidc-authz: adds the repeated impersonation headers that Envoy's
-- gRPC ext_authz cannot add itself.
--
-- The authz service answers an allowed request with header mutations for the
-- single-valued headers (Authorization, Impersonate-User, Impersonate-Uid)
-- and puts the whole identity into the ext_authz dynamic metadata. Envoy
-- 1.40 keeps only the last value of a repeated header mutation, so this
-- filter, placed right after ext_authz, writes one Impersonate-Group line
-- per group and one Impersonate-Extra-<key> line per extra value. The
-- apiserver does not split comma-joined values: each must be its own line.
--
-- The metadata keys it reads (mode, groups, impersonate_extra) are the
-- identity contract of the service's src/metadata.rs; a test holds this file
-- to it.
--
-- It never touches Authorization, Impersonate-User or Impersonate-Uid. When
-- the metadata is absent (passthrough, or a route without ext_authz) it does
-- nothing.

local NAMESPACE = "envoy.filters.http.ext_authz"
local EXTRA_PREFIX = "impersonate-extra-"

function envoy_on_request(request_handle)
  local metadata = request_handle:streamInfo():dynamicMetadata():get(NAMESPACE)
  if metadata == nil or metadata["mode"] ~= "impersonate" then
    return
  end

  local headers = request_handle:headers()

  -- Client-supplied impersonation never gets this far: the service refuses
  -- any request carrying an impersonate-* header. As defence in depth, the
  -- names written below are cleared first (fixed names: a remove is cheap,
  -- where walking every request header costs Envoy about a tenth of its
  -- time per request).
  headers:remove("impersonate-group")
  local groups = metadata["groups"]
  if type(groups) == "table" then
    for _, group in ipairs(groups) do
      if type(group) == "string" then
        headers:add("impersonate-group", group)
      end
    end
  end

  local extra = metadata["impersonate_extra"]
  if type(extra) == "table" then
    -- Sorted so that the upstream sees the lines in a stable order.
    local names = {}
    for name, _ in pairs(extra) do
      if type(name) == "string" and string.sub(name, 1, #EXTRA_PREFIX) == EXTRA_PREFIX then
        names[#names + 1] = name
      end
    end
    table.sort(names)
    for _, name in ipairs(names) do
      headers:remove(name)
      local values = extra[name]
      if type(values) == "table" then
        for _, value in ipairs(values) do
          if type(value) == "string" then
            headers:add(name, value)
          end
        end
      end
    end
  end
end
